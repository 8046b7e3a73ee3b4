"""The fast trainer (JAX), in subprocesses with KERAS_BACKEND=jax and TensorFlow hidden, as on the GPU machines."""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from tests.conftest import ROOT

pytest.importorskip("jax")
NO_TENSORFLOW = os.path.join(ROOT, "tests", "no_tensorflow")


# XLA compiles on a CPU are slow, and the subprocesses of one test compile many programs twice (a fresh model
# of the same shape, the same predict in two scripts): JAX's persistent cache, shared by this test worker.
JAX_CACHE = tempfile.mkdtemp(prefix="vaevar_jax_cache_")
atexit.register(shutil.rmtree, JAX_CACHE, ignore_errors=True)


def jax_environment():
    return dict(
        os.environ,
        KERAS_BACKEND="jax",
        PYTHONPATH=NO_TENSORFLOW,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=JAX_CACHE,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast_vs_fit")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "fast_vs_fit.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=jax_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.load(open(out / "fast_vs_fit.json"))


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_fast_steps_equal_fit_steps(comparison, stage):
    """Same model, seed and batches: 20 steps' running loss and gamma, the weights and gamma's average
    (all weights but the conv biases that only feed batch norm: tests/fast_vs_fit.py says why)."""
    result = comparison[stage]
    assert result["steps"] == result["fast_steps"] == 20
    assert result["max_step_difference"] < 1e-4
    assert result["max_weight_difference"] < 1e-4
    fit_ema, fast_ema = result["mse_ema"]
    assert fast_ema == pytest.approx(fit_ema, rel=1e-5)


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_vmapped_unrolled_copies_train_as_they_would_alone(comparison, stage):
    """make_epoch_function(unroll=3, copies=2) (bench/fast_variants.py times both): each copy, on its own
    batches, takes the steps and reaches the weights of the same training run alone.

    The vmapped program rounds its batched products differently from the lone one, so the copies agree with
    it up to rounding, not bit for bit. The losses: float32 sums over a batch, ~1e-6 apart; 1e-4 leaves a
    hundredfold margin for the drift of 20 steps. The weights: Adam's first steps are nearly sign(g) * lr,
    so on entries whose gradient is zero up to rounding (the conv biases before batch norm are left out,
    fast_vs_fit.ROUNDING_DRIVEN) rounding picks the sign of lr-sized steps. Over 20 steps that moves a few
    entries by up to a few lr: 2e-4 to 4e-3 of the weights' scale on two x86-64 CPUs, and machine-dependent.
    So the weights are bounded against what the test guards against, measured in the same run: a copy that
    trained on the other copy's batches (shared or swapped state) differs from the lone run by the training
    itself, of the order of the weights. 5 % of that separates the two by over an order of magnitude."""
    result = comparison[stage]
    assert result["copy_step_difference"] < 1e-4
    assert result["copy_swapped_weight_difference"] > 0.1  # the reference is a real difference of trainings
    assert result["copy_weight_difference"] < 0.05 * result["copy_swapped_weight_difference"]


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_fast_log_rows_follow_the_fit_paths_schedule_and_gamma(comparison, stage):
    fit_rates, fast_rates = comparison[stage]["learning_rates"]
    assert fit_rates == fast_rates == ["0.001", "0.001", "0.0005"]  # halved after epoch 2 in both
    fit_gammas, fast_gammas = comparison[stage]["gammas"]
    np.testing.assert_allclose(fast_gammas, fit_gammas, rtol=1e-4)
    assert all(b <= a for a, b in zip(fast_gammas, fast_gammas[1:]))  # gamma never grows


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_fast_run_resumed_at_a_checkpoint_ends_bit_identical(comparison, stage):
    assert comparison[stage]["resumed_rows_equal"] and comparison[stage]["resumed_weights_equal"]


def test_fast_trainer_needs_the_jax_backend():
    import fast_training
    from common import VaevarError

    with pytest.raises(VaevarError, match="needs the JAX backend"):
        fast_training.choose("fast")
    assert fast_training.choose("auto") is None and fast_training.choose("fit") is None
