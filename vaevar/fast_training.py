"""The fast trainer (JAX backend): the training set on the device, one compiled call per epoch.

The same algorithm as training.fit, step for step: each step is Keras' own
JAX train step (model.train_step: the balanced loss, gamma's rule, Adam,
batch-norm updates, the sampler's noise), the batches are the fit path's
(training.batch_rows: a fresh permutation per (seed, epoch), rows sorted
within a batch; stage 2 resamples z = mu + sigma * eps from
training.latent_noise), and the learning rate is set per epoch as the fit
path's scheduler does. What changes is where the work happens: the uint8
images (or the latent codes) are copied to the device once, batches are
gathered and converted there, and jax.lax.scan runs a whole epoch per call,
so there is no Python round trip, host-to-device batch or callback per
step. log.csv rows, checkpoints (every --checkpoint-every epochs and at the
end) and the .keras files are the fit path's; a resume continues exactly.
The NaN guard checks each epoch's losses; SIGTERM / SIGINT stop after the
epoch in progress, which is checkpointed.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

import keras
import numpy as np

from vaevar import layout
from vaevar.errors import TimeBudgetReached, VaevarError
from vaevar.run_folder import (
    EpochMeasure,
    StopSignals,
    TimeBudget,
    diverged,
    interrupted,
    read_log,
    save_checkpoint,
    truncate_log,
    write_log_row,
)
from vaevar.runtime import TRAINERS
from vaevar.training import LatentBatches, batch_rows, build_optimizer, latent_noise, learning_rate_at

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import jax

    from vaevar.training import ImageBatches


def choose(trainer: str, checkpoint_every: int = 10) -> Callable[..., keras.Model] | None:
    """The training function for --trainer: fit (training.fit, any backend) or fast (JAX only); auto is
    fast where the backend is JAX on a GPU, else fit. Returns None for fit (train_stage's default)."""
    import functools

    if trainer not in TRAINERS:
        raise VaevarError(f"unknown --trainer {trainer!r}: use {', '.join(TRAINERS)}")
    jax_backend = keras.backend.backend() == "jax"
    if trainer == "fast" and not jax_backend:
        raise VaevarError(
            "--trainer fast needs the JAX backend: set KERAS_BACKEND=jax (or use --trainer fit)"
        )
    if trainer == "fit" or (trainer == "auto" and not (jax_backend and _on_gpu())):
        return None
    return functools.partial(fit_fast, checkpoint_every=checkpoint_every)


def _on_gpu():
    import jax

    return any(device.platform == "gpu" for device in jax.devices())


class EpochInputs:
    """Device-resident training data and, per epoch, the fit path's batch rows (and stage-2 noise)."""

    def __init__(self, batches):
        import jax.numpy as jnp

        self.latent = isinstance(batches, LatentBatches)
        self.batch_size, self.seed = batches.batch_size, batches.seed
        if self.latent:
            self.source = (jnp.asarray(batches.mu), jnp.asarray(batches.sigma))
            self.count, self.dims = batches.mu.shape
        else:
            self.source = (jnp.asarray(batches.images),)  # uint8: a quarter of float32's memory
            self.count = len(batches.images)

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rows = batch_rows(self.count, self.batch_size, self.seed, epoch)
        if not self.latent:
            return rows, np.zeros((len(rows), 0), np.float32)
        noise = np.stack(
            [
                latent_noise(self.seed, epoch, index, (self.batch_size, self.dims))
                for index in range(len(rows))
            ]
        )
        return rows, noise

    def batch(self, source: tuple[jax.Array, ...], rows: jax.Array, noise: jax.Array) -> jax.Array:
        """The step's inputs, on the device: as ImageBatches / LatentBatches would give them."""
        import jax.numpy as jnp

        if self.latent:
            mu, sigma = source
            return mu[rows] + sigma[rows] * noise
        return source[0][rows].astype(jnp.float32) / 255.0


def flat_adam(optimizer: keras.optimizers.Adam) -> Callable[..., tuple[list, list]]:
    """optimizer.stateless_apply's arithmetic (Keras' Adam, step for step) done once over all parameters
    concatenated into one buffer: a few large kernels instead of a few per variable. For a plain Adam
    (no clipping, weight decay, EMA, AMSGrad or loss scaling) built on the model's trainable variables."""
    import jax.numpy as jnp

    names = [v.path for v in optimizer.variables]
    plain = (
        type(optimizer) is keras.optimizers.Adam
        and not optimizer.amsgrad
        and not optimizer.use_ema
        and optimizer.weight_decay is None
        and optimizer.clipnorm is None
        and optimizer.global_clipnorm is None
        and optimizer.clipvalue is None
        and optimizer.gradient_accumulation_steps is None
        and optimizer.loss_scale_factor is None
        and optimizer.built
    )
    count = (len(names) - 2) // 2
    paired = names[0].endswith("iteration") and names[1].endswith("learning_rate")
    paired = paired and all(
        names[2 + 2 * i].endswith("_momentum") and names[3 + 2 * i].endswith("_velocity")
        for i in range(count)
    )
    if not (plain and paired and count > 0 and len(names) == 2 + 2 * count):
        raise VaevarError("the flat Adam update needs a plain keras.optimizers.Adam (no extras), built")
    beta_1, beta_2, epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon

    def flatten(arrays):
        return jnp.concatenate([jnp.ravel(a) for a in arrays])

    def unflatten(flat, like):
        sizes = [int(np.prod(a.shape)) for a in like]
        offsets = np.cumsum([0] + sizes)
        return [flat[offsets[i] : offsets[i + 1]].reshape(a.shape) for i, a in enumerate(like)]

    def stateless_apply(optimizer_variables, grads, trainable_variables):
        iterations, learning_rate = optimizer_variables[:2]
        momentums, velocities = optimizer_variables[2::2], optimizer_variables[3::2]
        dtype = trainable_variables[0].dtype
        g, m, v, w = (flatten(x) for x in (grads, momentums, velocities, trainable_variables))
        g = g.astype(dtype)
        local_step = (iterations + 1).astype(dtype)
        beta_1_power = jnp.power(jnp.asarray(beta_1, dtype), local_step)
        beta_2_power = jnp.power(jnp.asarray(beta_2, dtype), local_step)
        alpha = learning_rate.astype(dtype) * jnp.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m = m + (g - m) * (1 - beta_1)
        v = v + (jnp.square(g) - v) * (1 - beta_2)
        w = w - (m * alpha) / (jnp.sqrt(v) + epsilon)
        updated = [iterations + 1, learning_rate]
        for pair in zip(unflatten(m, momentums), unflatten(v, velocities)):
            updated.extend(pair)
        return unflatten(w, trainable_variables), updated

    return stateless_apply


def make_epoch_function(
    model: keras.Model, inputs: EpochInputs, unroll: int = 1, copies: int = 1, flat_update: bool = False
) -> Callable[..., tuple[tuple[list[jax.Array], ...], dict[str, jax.Array]]]:
    """A compiled function (state, source, rows, noise) -> (state, per-step logs) for one epoch;
    unroll: steps per iteration of the compiled loop (the same steps, fewer loop iterations);
    copies > 1: that many independent trainings at once (state, rows and noise stacked on a first axis,
    the data shared), as bench/fast_variants.py times them; flat_update: Adam over one flattened buffer
    (flat_adam; the model's optimizer is switched to it)."""
    import jax

    if flat_update:
        model.optimizer.stateless_apply = flat_adam(model.optimizer)

    def run_epoch(state, source, rows, noise):
        def step(carry, batch):
            step_rows, step_noise = batch
            logs, carry = model.train_step(carry, (inputs.batch(source, step_rows, step_noise),))
            return carry, logs

        return jax.lax.scan(step, state, (rows, noise), unroll=unroll)

    if copies > 1:
        run_epoch = jax.vmap(run_epoch, in_axes=(0, None, 0, 0))
    return jax.jit(run_epoch, donate_argnums=0)


def model_state(model: keras.Model) -> tuple[list[jax.Array], ...]:
    """The model's trainable, non-trainable, optimizer and metric variables as JAX arrays: the fast step's state."""
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )


def stacked_state(models: Sequence[keras.Model]) -> tuple[list[jax.Array], ...]:
    """The states of several models stacked on a first axis: an epoch function's state with copies."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda *v: jnp.stack(v), *[model_state(model) for model in models])


def sync_state(model: keras.Model, state: Sequence[Sequence[jax.Array]]) -> None:
    """Write the loop's state back into the model's variables (before a checkpoint or the final save)."""
    for variables, values in zip(
        (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        ),
        state,
    ):
        for variable, value in zip(variables, values):
            variable.assign(value)


def fit_fast(
    model: keras.Model,
    batches: ImageBatches,
    run_dir: str,
    epochs: int,
    initial_epoch: int,
    learning_rate: float,
    halve_every: int,
    metadata: dict,
    verbose: int = 1,
    deadline: float | None = None,
    checkpoint_every: int = 10,
    measure: EpochMeasure | None = None,
) -> keras.Model:
    """training.fit's contract (run_folder: resume, log.csv, checkpoints, the NaN, signal and time-budget stops),
    on the device; only the loop is this trainer's."""
    import jax.numpy as jnp
    from tqdm import tqdm

    os.makedirs(run_dir, exist_ok=True)
    log_path = layout.StagePaths(run_dir).log
    truncate_log(log_path, initial_epoch)
    if initial_epoch >= epochs:
        return model
    build_optimizer(model)
    model.reset_metrics()
    rate_variable = model.optimizer.learning_rate
    learning_rate_index = next(i for i, v in enumerate(model.optimizer.variables) if v is rate_variable)
    inputs = EpochInputs(batches)
    run_epoch = make_epoch_function(model, inputs)
    state = model_state(model)
    checkpointed = initial_epoch
    budget, checkpoint_seconds = TimeBudget(deadline), 0.0
    with StopSignals() as signals:
        bar = tqdm(
            range(initial_epoch, epochs),
            desc="epochs",
            unit="epoch",
            disable=not verbose,
            initial=initial_epoch,
            total=epochs,
        )
        for epoch in bar:
            started = time.time()
            rate = learning_rate_at(epoch, learning_rate, halve_every)
            optimizer_values = list(state[2])
            optimizer_values[learning_rate_index] = jnp.asarray(
                rate, optimizer_values[learning_rate_index].dtype
            )
            fresh_metrics = [
                jnp.zeros_like(v.value) for v in model.metrics_variables
            ]  # the epoch's means restart
            state = (state[0], state[1], optimizer_values, fresh_metrics)
            rows, noise = inputs.epoch(epoch)
            state, logs = run_epoch(state, inputs.source, jnp.asarray(rows), jnp.asarray(noise))
            final = {
                k: float(np.asarray(v)[-1]) for k, v in logs.items() if k in ("loss", "mse", "gamma", "kl")
            }
            if not all(math.isfinite(v) for v in final.values()):
                truncate_log(log_path, checkpointed)
                raise diverged(run_dir, final.get("loss"), epoch + 1, checkpointed)
            seconds, measured = time.time() - started, None
            if measure is not None and measure.due(epoch + 1):
                sync_state(model, state)  # the measure reads the model's variables
                measured = measure.measure(model, epoch + 1)
                # Keras' predict (the latent FD's decode) donates the variables' buffers, which the loop's
                # state shares since the sync: read the same values back from their new buffers
                state = model_state(model)
            fields = measure.fields if measure is not None else ()
            write_log_row(log_path, epoch + 1, final, rate, seconds, measured, fields)
            bar.set_postfix(loss=f"{final['loss']:.4g}", gamma=f"{final['gamma']:.4g}")
            done = epoch + 1
            # the epoch's time includes a checkpoint, written or not: the budget keeps room for the last one
            over_budget = done < epochs and not budget.another_fits(
                time.time() - started + checkpoint_seconds
            )
            if done % checkpoint_every == 0 or done == epochs or signals.received or over_budget:
                saving = time.time()
                sync_state(model, state)
                last = done == epochs or bool(signals.received) or over_budget
                save_checkpoint(model, run_dir, metadata, done, last)
                checkpointed, checkpoint_seconds = done, time.time() - saving
            if signals.received:
                raise interrupted(signals.received, len(read_log(log_path)))
            if over_budget:
                raise TimeBudgetReached(done, epochs)
    return model
