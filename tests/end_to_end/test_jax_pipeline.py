"""The whole pipeline on JAX with TensorFlow hidden, as on the GPU machines (its own file, so that the test
runner's workers share it and tests/test_fast_training.py's comparison)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, jax_environment

pytest.importorskip("jax")


def test_quick_pipeline_on_jax_without_tensorflow(tmp_path, random_inception_weights):
    """train (the fast trainer), generate, analyse, then score, with KERAS_BACKEND=jax and TensorFlow
    unimportable. 100 training images (one batch per epoch: an XLA CPU step of this network takes ~15 s);
    the FID step scores one set on a few images: XLA compiles the Inception on a CPU slowly."""
    from tests.conftest import digit_images

    images = digit_images(160)
    mnist_npz = str(tmp_path / "mnist.npz")
    np.savez(
        mnist_npz,
        x_train=images[:100],
        y_train=np.zeros(100, np.uint8),
        x_test=images[100:],
        y_test=np.zeros(60, np.uint8),
    )
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        os.path.join(ROOT, "reproduce.py"),
        "--dataset",
        "mnist",
        "--data-path",
        mnist_npz,
        "--run-dir",
        str(run_dir),
        "--quick",
        "--epochs",
        "2",
        "--stage2-epochs",
        "2",
        "--num-samples",
        "50",
        "--skip-fid",
        "--verbose",
        "0",
        "--trainer",
        "fast",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=ROOT, env=jax_environment()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = open(run_dir / "stage1" / "log.csv").read().splitlines()
    assert len(log) == 3 and json.load(open(run_dir / "stage1" / "config.json"))["trainer"] == "fast"
    assert os.path.exists(run_dir / "samples" / "gen2_renorm.npz")
    assert os.path.exists(run_dir / "variance_analysis" / "variance_loss.json")
    command = [
        sys.executable,
        os.path.join(ROOT, "compute_fid.py"),
        "--dataset",
        "mnist",
        "--data-path",
        mnist_npz,
        "--run-dir",
        str(run_dir),
        "--samples",
        str(run_dir / "samples" / "gen1.npz"),
        "--num-samples",
        "8",
        "--no-train-reference",
        "--inception-weights",
        random_inception_weights,
        "--drop-remainder",
        "1",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=ROOT, env=jax_environment()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    entry = json.load(open(run_dir / "fid.json"))["gen1"]
    assert entry["backend"] == "jax" and entry["n"] == 8 and np.isfinite(entry["fid"])
