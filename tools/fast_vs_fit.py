"""Run with KERAS_BACKEND=jax (tests/test_fast_training.py does, in a subprocess): the fast trainer against
model.fit on the same model, seed and batches, for both stages. Prints one JSON object."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from models import transposed_conv  # noqa: E402
from models.first_stage import build_first_stage  # noqa: E402
from models.second_stage import build_second_stage  # noqa: E402
from vaevar import fast_training  # noqa: E402
from vaevar.layout import StagePaths  # noqa: E402
from vaevar.run_folder import load_model, read_log  # noqa: E402
from vaevar.training import FeedEpoch, ImageBatches, LatentBatches, fit, make_optimizer  # noqa: E402

assert keras.backend.backend() == "jax"
OUT = sys.argv[1]
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (200, 28, 28, 1), dtype=np.uint8)
MU = rng.normal(0, 1, (200, 8)).astype(np.float32)
SIGMA = rng.uniform(0.1, 0.5, (200, 8)).astype(np.float32)
STAGES = {
    "stage1": (
        lambda: build_first_stage((28, 28, 1), latent_dim=8, base_filters=4),
        lambda epoch: ImageBatches(IMAGES, 10, 0, epoch=epoch),
    ),
    "stage2": (
        lambda: build_second_stage(8, width=16),
        lambda epoch: LatentBatches(MU, SIGMA, 10, 0, epoch=epoch),
    ),
}


def fresh(build, nudge=None):
    """The model every comparison starts from. nudge (a seed): each trainable weight moved by one float32
    rounding, a factor 1 +- 2^-24 of random sign: the same training as the plain start up to rounding."""
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=make_optimizer(1e-3))
    model.optimizer.build(model.trainable_variables)
    if nudge is not None:
        signs = np.random.default_rng(nudge)
        for variable in model.trainable_variables:
            value = np.asarray(variable.numpy(), np.float64)
            variable.assign((value * (1 + 2.0**-24 * signs.choice([-1, 1], value.shape))).astype(np.float32))
    return model


class StepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([float(logs["loss"]), float(logs["gamma"])])


def rows_without_seconds(run_dir):
    return [
        {k: v for k, v in row.items() if k != "seconds"} for row in read_log(os.path.join(run_dir, "log.csv"))
    ]


# A conv bias followed only by batch norm has a gradient of zero up to rounding, and Adam scales that rounding
# to steps of order the learning rate: those biases (and the batch means downstream of them) follow the
# rounding of the two compiled programs, not the algorithm. Everything else is compared.
ROUNDING_DRIVEN = re.compile(r"_conv0/bias$|_bn1/(moving_mean|biased_mean)$")


# float32 terms summed into one step's loss (batch 10: squared errors and KL terms): all nonnegative, so
# two summation orders of them differ by at most terms * 2^-24 relative
LOSS_TERMS = {"stage1": 10 * (28 * 28 + 8), "stage2": 10 * (8 + 8)}
NUDGES = 3  # nudged starts per batch sequence: the rounding reference is the largest of their differences


def trained(build, epoch_function, source, rows, noise, nudge=None):
    """A fresh model (nudged or not) after one compiled epoch on `rows`: (model, per-step loss and gamma)."""
    model = fresh(build, nudge)
    state, logs = epoch_function(fast_training.model_state(model), source, rows, noise)
    fast_training.sync_state(model, state)
    return model, np.stack([np.asarray(logs["loss"]), np.asarray(logs["gamma"])], axis=1)


def max_step_relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(a))))


def max_relative(a_model, b_model):
    pairs = [
        (a, b)
        for v, a, b in zip(a_model.weights, a_model.get_weights(), b_model.get_weights())
        if not ROUNDING_DRIVEN.search(v.path)
    ]
    return max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12)) for a, b in pairs)


results = {}
for stage, (build, batches) in STAGES.items():
    # 20 steps (one epoch of 200 at batch 10): per-step running loss and gamma, then the weights
    model = fresh(build)
    steps = StepLogs()
    feeder = batches(0)
    model.fit(
        feeder, epochs=1, verbose=0, shuffle=False, callbacks=[FeedEpoch(feeder), steps]
    )  # as training.fit
    inputs = fast_training.EpochInputs(batches(0))
    rows, noise = inputs.epoch(0)
    other_rows, other_noise = inputs.epoch(1)
    run_alone = fast_training.make_epoch_function(fresh(build), inputs)
    fast, fast_losses = trained(build, run_alone, inputs.source, rows, noise)
    alone, alone_losses = trained(build, run_alone, inputs.source, other_rows, other_noise)
    # The rounding reference, measured here on this machine: the same compiled epoch on the same batches from
    # starts one rounding away. The training is the same in exact arithmetic, so these differences are what
    # rounding alone does to 20 steps of this training (Adam turns rounding-level gradients into lr-sized
    # steps); two correct programs differ by rounding, so by the same order.
    reference = {"weights": [0.0, 0.0], "steps": [0.0, 0.0]}
    for nudge in range(1, NUDGES + 1):
        for index, (plain, plain_losses, batch_rows, batch_noise) in enumerate(
            ((fast, fast_losses, rows, noise), (alone, alone_losses, other_rows, other_noise))
        ):
            nudged, nudged_losses = trained(build, run_alone, inputs.source, batch_rows, batch_noise, nudge)
            reference["weights"][index] = max(reference["weights"][index], max_relative(plain, nudged))
            reference["steps"][index] = max(
                reference["steps"][index], max_step_relative(plain_losses, nudged_losses)
            )
    # two trainings at once in one vmapped epoch whose loop is unrolled 2 steps per iteration (bench/
    # fast_variants.py times both; unroll 3 compiled twice as long, 42 s on one core, for lax.scan's own
    # remainder loop): copy 0 on this epoch's batches against `fast` above,
    # copy 1 on another epoch's batches against the same training alone (the same compiled epoch as `fast`)
    pair = [fresh(build), fresh(build)]
    paired_state, paired_logs = fast_training.make_epoch_function(pair[0], inputs, unroll=2, copies=2)(
        fast_training.stacked_state(pair),
        inputs.source,
        np.stack([rows, other_rows]),
        np.stack([noise, other_noise]),
    )
    for index, member in enumerate(pair):
        fast_training.sync_state(member, jax.tree_util.tree_map(lambda v: v[index], paired_state))
    paired_steps = np.stack([np.asarray(paired_logs["loss"]), np.asarray(paired_logs["gamma"])], axis=-1)
    # Adam over one flattened buffer (bench/fast_variants.py's flat_adam) on this epoch's batches, against `fast`
    flat_epoch = fast_training.make_epoch_function(fresh(build), inputs, flat_update=True)
    flat, flat_losses = trained(build, flat_epoch, inputs.source, rows, noise)
    # the flat update itself against the optimizer's own, three steps on random gradients (jitted: as in a step)
    direct = fresh(build)
    flat_apply = jax.jit(fast_training.flat_adam(direct.optimizer))
    own_apply = jax.jit(direct.optimizer.stateless_apply)
    own_state = flat_state = (
        [v.value for v in direct.trainable_variables],
        [v.value for v in direct.optimizer.variables],
    )
    gradients = np.random.default_rng(1)
    direct_difference = 0.0
    for _ in range(3):
        grads = [gradients.normal(size=v.shape).astype(np.float32) for v in direct.trainable_variables]
        own_state = own_apply(own_state[1], grads, own_state[0])
        flat_state = flat_apply(flat_state[1], grads, flat_state[0])
        for own, flat_value in zip(own_state[0] + own_state[1], flat_state[0] + flat_state[1]):
            own, flat_value = np.asarray(own, np.float64), np.asarray(flat_value, np.float64)
            scale = np.max(np.abs(own)) + 1e-30  # relative to the tensor, as max_relative
            direct_difference = max(direct_difference, float(np.max(np.abs(own - flat_value)) / scale))
    results[stage] = {
        "steps": len(steps.steps),
        "fast_steps": len(fast_losses),
        "loss_terms": LOSS_TERMS[stage],
        "max_step_difference": max_step_relative(steps.steps, fast_losses),
        "max_weight_difference": max_relative(model, fast),
        "mse_ema": [float(model.mse_ema.numpy()), float(fast.mse_ema.numpy())],
        "rounding_step_difference": reference["steps"][0],
        "rounding_weight_difference": reference["weights"][0],
        "copy_step_difference": [
            max_step_relative(alone_losses_i, paired_steps[i])
            for i, alone_losses_i in enumerate((fast_losses, alone_losses))
        ],
        "copy_weight_difference": [max_relative(fast, pair[0]), max_relative(alone, pair[1])],
        "flat_step_difference": max_step_relative(fast_losses, flat_losses),
        "flat_update_difference": direct_difference,
        "flat_weight_difference": max_relative(fast, flat),
        "flat_swapped_weight_difference": max_relative(alone, flat),
        "copy_rounding_step_difference": reference["steps"],
        "copy_rounding_weight_difference": reference["weights"],
        # each copy against the lone run of the other copy's batches: what swapped or shared batches would give
        "copy_swapped_weight_difference": min(max_relative(fast, pair[1]), max_relative(alone, pair[0])),
    }
    if stage == "stage1":
        # Keras' own transposed conv and gradient (the default before models/transposed_conv.py; bench's
        # keras_transposed_conv variant), traced with the switch off, on this epoch's batches, against `fast`
        transposed_conv.EXACT_GRADIENT = False
        try:
            keras_epoch = fast_training.make_epoch_function(fresh(build), inputs)
            keras_conv, keras_conv_losses = trained(build, keras_epoch, inputs.source, rows, noise)
        finally:
            transposed_conv.EXACT_GRADIENT = True
        results[stage]["keras_transposed_conv"] = {
            "step_difference": max_step_relative(fast_losses, keras_conv_losses),
            "weight_difference": max_relative(fast, keras_conv),
            "swapped_weight_difference": max_relative(alone, keras_conv),
        }
    # 3 epochs with a halving after 2: fit's log.csv against the fast one's, and a resumed fast run
    logs_of = {}
    for name, epochs_per_call in (("fit", [3]), ("fast", [3]), ("fast_resumed", [1, 3])):
        run_dir = os.path.join(OUT, stage, name)
        done = 0
        model = fresh(build)
        for epochs in epochs_per_call:
            if done:
                model = load_model(StagePaths(run_dir).checkpoint)
            trainer = fit if name == "fit" else fast_training.choose("fast", checkpoint_every=1)
            trainer(model, batches(done), run_dir, epochs, done, 1e-3, 2, {"stage": stage}, verbose=0)
            done = epochs
        logs_of[name] = (rows_without_seconds(run_dir), model.get_weights())
    fit_rows, fast_rows = logs_of["fit"][0], logs_of["fast"][0]
    results[stage].update(
        {
            "learning_rates": [
                [r["learning_rate"] for r in fit_rows],
                [r["learning_rate"] for r in fast_rows],
            ],
            "gammas": [[float(r["gamma"]) for r in fit_rows], [float(r["gamma"]) for r in fast_rows]],
            "resumed_rows_equal": logs_of["fast_resumed"][0] == fast_rows,
            "resumed_weights_equal": all(
                np.array_equal(a, b) for a, b in zip(logs_of["fast"][1], logs_of["fast_resumed"][1])
            ),
        }
    )
with open(os.path.join(OUT, "fast_vs_fit.json"), "w") as f:
    json.dump(results, f, indent=1)
print(json.dumps(results))
