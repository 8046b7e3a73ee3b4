"""bench/torch_reference.py (optional: PyTorch is not a requirement): its network is the authors' first stage."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, ROUNDING_MARGIN, jax_environment

pytest.importorskip("torch")
pytest.importorskip("jax")


def test_torch_network_computes_the_keras_models_loss():
    """Same weights, batch and noise (training mode): the torch network's loss, reconstruction and mu are the
    Keras model's within ROUNDING_MARGIN times what one rounding of the weights moves them by; PyTorch's usual
    symmetric padding at stride 2 (a port's likeliest slip) is far outside that."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from bench.torch_reference import compare_with_keras; "
            "print(json.dumps(compare_with_keras()))",
        ],
        cwd=ROOT,
        env=jax_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    difference = json.loads(done.stdout.strip().splitlines()[-1])
    for output, rounding in difference["rounding"].items():
        assert 0 < rounding, output  # the reference is a real change
        assert difference["torch"][output] <= ROUNDING_MARGIN * rounding, output
        assert difference["torch_symmetric_padding"][output] > ROUNDING_MARGIN * rounding, output
