"""The fast trainer (JAX), in subprocesses with KERAS_BACKEND=jax and TensorFlow hidden, as on the GPU machines."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, ROUNDING_MARGIN, U, jax_environment, log_epochs, run_mains, tiny_mnist

pytest.importorskip("jax")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast_vs_fit")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "fast_vs_fit.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=jax_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.load(open(out / "fast_vs_fit.json"))


# Two programs that train the same steps differ by rounding, and 20 steps of Adam amplify rounding: an entry
# whose gradient is at the rounding level gets lr-sized steps of either sign. How far depends on the machine's
# instructions (2e-4 to 0.13 of a tensor's scale on one CPU under three instruction sets), so no fixed number
# bounds it. tools/fast_vs_fit.py measures it in the same run: the same program from starts one rounding away
# (3 of them), on the same batches. A correct second program is one more rounding-level difference, so its
# distance is of the same order: bounded by ROUNDING_MARGIN times that reference. A bug (another learning
# rate, loss or batch) is a difference of the algorithm, not of rounding. (ROUNDING_MARGIN and U: conftest's.)


def step_bound(result, reference):
    """Per-step loss and gamma: the rounding reference's margin, and never under one reordered sum of the
    step's nonnegative loss terms (terms * u: the whole difference when rounding does not grow)."""
    return max(ROUNDING_MARGIN * reference, result["loss_terms"] * U)


def weight_bound(result, reference):
    """Weights, relative to each tensor's largest entry: the reference's margin, and never under ten roundings
    a step (when the reference happens to be smaller than the rounding that every step adds)."""
    return ROUNDING_MARGIN * max(reference, result["steps"] * U)


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_fast_steps_equal_fit_steps(comparison, stage):
    """Same model, seed and batches: 20 steps' running loss and gamma, the weights and gamma's average
    (all weights but the conv biases that only feed batch norm: tools/fast_vs_fit.py says why), each within
    the rounding this training shows on this machine."""
    result = comparison[stage]
    assert result["steps"] == result["fast_steps"] == 20
    assert result["max_step_difference"] <= step_bound(result, result["rounding_step_difference"])
    assert result["max_weight_difference"] <= weight_bound(result, result["rounding_weight_difference"])
    fit_ema, fast_ema = result["mse_ema"]  # an average of the steps' squared errors: the steps' bound
    assert fast_ema == pytest.approx(fit_ema, rel=step_bound(result, result["rounding_step_difference"]))
    # the bound separates: fit against the fast trainer on another epoch's batches is far outside it
    assert (
        weight_bound(result, result["rounding_weight_difference"]) < result["copy_swapped_weight_difference"]
    )


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_vmapped_unrolled_copies_train_as_they_would_alone(comparison, stage):
    """make_epoch_function(unroll=2, copies=2) (bench/fast_variants.py times both): each copy, on its own
    batches, takes the steps and reaches the weights of the same training run alone, within the rounding
    reference of that training (its own batches). Against the lone run of the other copy's batches (shared
    or swapped state) it differs by the training itself, of the order of the weights."""
    result = comparison[stage]
    for copy in (0, 1):
        steps_reference = result["copy_rounding_step_difference"][copy]
        weights_reference = result["copy_rounding_weight_difference"][copy]
        assert result["copy_step_difference"][copy] <= step_bound(result, steps_reference), copy
        assert result["copy_weight_difference"][copy] <= weight_bound(result, weights_reference), copy
    assert result["copy_swapped_weight_difference"] > 0.1  # the reference is a real difference of trainings


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_flat_adam_trains_the_same_steps(comparison, stage):
    """fast_training.flat_adam (bench/fast_variants.py's flat_adam: Adam over one concatenated buffer) against
    the optimizer's stateless_apply, and make_epoch_function(flat_update=True) against the default fast epoch:
    the same steps and weights on the same batches, within its rounding reference; against the run on other
    batches it is as far as another training."""
    result = comparison[stage]
    # the update alone, three steps on random gradients: Keras' own elementwise formulas, each entry within a
    # few roundings of the optimizer's (a fused multiply-add may round once less)
    assert result["flat_update_difference"] <= 8 * U
    assert result["flat_step_difference"] <= step_bound(result, result["rounding_step_difference"])
    assert result["flat_weight_difference"] <= weight_bound(result, result["rounding_weight_difference"])
    assert result["flat_swapped_weight_difference"] > 0.1


def test_the_exact_transposed_conv_trains_the_steps_of_keras_own(comparison):
    """models/transposed_conv.py's backward pass against Keras' Conv2DTranspose gradient (the switch off): one
    stage-1 epoch on the same batches takes the same steps and reaches the same weights within this
    training's rounding reference, and not the same program (the switch took effect: the weights differ); against
    the run on other batches it is as far as another training."""
    result = comparison["stage1"]
    keras_conv = result["keras_transposed_conv"]
    assert keras_conv["step_difference"] <= step_bound(result, result["rounding_step_difference"])
    assert 0 < keras_conv["weight_difference"] <= weight_bound(result, result["rounding_weight_difference"])
    assert keras_conv["swapped_weight_difference"] > 0.1


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_fast_log_rows_follow_the_fit_paths_schedule_and_gamma(comparison, stage):
    fit_rates, fast_rates = comparison[stage]["learning_rates"]
    assert fit_rates == fast_rates == ["0.001", "0.001", "0.0005"]  # halved after epoch 2 in both
    fit_gammas, fast_gammas = comparison[stage]["gammas"]
    # 3 epochs' gamma: 60 steps of the same rounding as the 20 compared above (the same bound, tripled)
    rtol = 3 * step_bound(comparison[stage], comparison[stage]["rounding_step_difference"])
    np.testing.assert_allclose(fast_gammas, fit_gammas, rtol=rtol)
    assert all(b <= a for a, b in zip(fast_gammas, fast_gammas[1:]))  # gamma never grows


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_fast_run_resumed_at_a_checkpoint_ends_bit_identical(comparison, stage):
    assert comparison[stage]["resumed_rows_equal"] and comparison[stage]["resumed_weights_equal"]


def test_a_budget_stop_checkpoints_its_epoch_between_checkpoints(tmp_path, mnist_npz):
    """--time-budget 1 with --checkpoint-every 10: the command's set-up, tracing and first epoch take over
    the budget's second, so the run stops after epoch 1 of 2 with exit code 75, and that epoch is
    checkpointed though 1 is not a multiple of 10. Rerun without the budget, it ends as a straight run: log
    rows and the weights' digest (config.json) bit for bit. fast_vs_fit.py's network and batches (10 of 200
    images): the comparison above has put the compiled epoch in this worker's JAX cache."""

    def argv(run_dir, *flags):
        argv = tiny_mnist(mnist_npz, run_dir, epochs=2, batch_size=10, limit=200)
        return argv + ["--trainer", "fast", "--checkpoint-every", "10", *flags]

    def run(*command):
        return subprocess.run(
            [sys.executable, *command],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
            env=jax_environment(),
        )

    def rows_and_weights(run_dir):
        with open(os.path.join(run_dir, "stage1", "log.csv")) as f:
            rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
        return rows, json.load(open(os.path.join(run_dir, "stage1", "config.json")))["weights"]

    budgeted, straight = str(tmp_path / "budgeted"), str(tmp_path / "straight")
    stopped = run("train_first_stage.py", *argv(budgeted, "--time-budget", "1"))
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert "stopped at the time budget after epoch 1 of 2" in stopped.stderr
    assert json.load(open(os.path.join(budgeted, "stage1", "checkpoint.json")))["epoch"] == 1
    assert log_epochs(os.path.join(budgeted, "stage1")) == [1]
    # the resume and a straight run, in one process: one start-up of Keras and JAX
    rest = run_mains(
        [["train_first_stage", argv(budgeted)], ["train_first_stage", argv(straight)]], jax_environment()
    )
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert f"resuming {os.path.join(budgeted, 'stage1')} after epoch 1" in rest.stdout
    assert log_epochs(os.path.join(budgeted, "stage1")) == [1, 2]
    assert rows_and_weights(budgeted) == rows_and_weights(straight)


def test_fast_trainer_needs_the_jax_backend():
    from vaevar import fast_training
    from vaevar.errors import VaevarError

    with pytest.raises(VaevarError, match="needs the JAX backend"):
        fast_training.choose("fast")
    assert fast_training.choose("auto") is None and fast_training.choose("fit") is None


@pytest.fixture(scope="module")
def second_stages_on_jax(tmp_path_factory, trained_stage1):
    """In one JAX process: the fast trainer's second stage with --latent-fd-every 1 and --keep-models-at 1
    (measured), the same without them (plain), then plain resumed on fit for a third epoch, which is refused.
    Returns (the process, measured's run folder, plain's)."""
    root = tmp_path_factory.mktemp("second_stages")
    measured, plain = str(root / "measured"), str(root / "plain")
    for run_dir in (measured, plain):
        shutil.copytree(os.path.join(trained_stage1, "stage1"), os.path.join(run_dir, "stage1"))

    def argv(run_dir, trainer="fast", epochs="2", *flags):
        return ["--dataset", "mnist", "--run-dir", run_dir, "--epochs", epochs, "--width", "16"] + [
            "--batch-size",
            "50",
            "--trainer",
            trainer,
            "--verbose",
            "0",
            *flags,
        ]

    flags = ["--latent-fd-every", "1", "--latent-fd-samples", "40", "--keep-models-at", "1"]
    result = run_mains(
        [
            ["train_second_stage", argv(measured, "fast", "2", *flags)],
            ["train_second_stage", argv(plain)],
            ["train_second_stage", argv(plain, "fit", "3")],  # the last: its refusal ends the process
        ],
        jax_environment(),
    )
    return result, measured, plain


def test_a_second_stage_measured_each_epoch_trains_as_one_not_measured(second_stages_on_jax):
    """The measure decodes with Keras' predict, which donates the variables' buffers that the loop's state
    shares. The run goes on through both epochs, each row holds its distances, and the log's losses and the
    weights' digest equal the same run's without the measure, bit for bit (measuring reads the model, it
    never changes it)."""
    result, measured, plain = second_stages_on_jax
    assert os.path.exists(os.path.join(plain, "stage2", "config.json")), result.stderr[-3000:]

    def rows_and_weights(run_dir):
        with open(os.path.join(run_dir, "stage2", "log.csv")) as f:
            rows = list(csv.DictReader(f))
        return rows, json.load(open(os.path.join(run_dir, "stage2", "config.json")))["weights"]

    (measured_rows, measured_weights), (plain_rows, plain_weights) = map(rows_and_weights, (measured, plain))
    assert all(float(row["latent_fd_gen2"]) > 0 for row in measured_rows) and len(measured_rows) == 2
    columns = ("epoch", "loss", "mse", "gamma", "kl", "learning_rate")
    assert [[r[c] for c in columns] for r in measured_rows] == [[r[c] for c in columns] for r in plain_rows]
    assert measured_weights == plain_weights
    assert os.path.exists(os.path.join(measured, "stage2", "kept", "epoch_1.keras"))


def test_a_stage_resumes_on_the_trainer_it_started_on_only(second_stages_on_jax):
    """fit and the fast trainer draw the sampler's noise from different generators: a stage checkpointed by
    one and resumed by the other would not be the run it continues (nor bit-identical to a straight one).
    The checkpoint records its trainer, and a resume on the other is refused in one line, naming the flag;
    the stage keeps its two epochs."""
    result, _, plain = second_stages_on_jax
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "holds a run with trainer='fast', not 'fit'" in result.stderr and "(--trainer fast)" in result.stderr
    )
    assert log_epochs(os.path.join(plain, "stage2")) == [1, 2]
