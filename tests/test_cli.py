"""vaevar/cli.py: constants as flags, and their checks."""

import pytest

import train_first_stage
from vaevar.errors import VaevarError


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "cifar100"], "unknown data set 'cifar100'"),
        (["--dataset", "mnist", "--epochs", "-1"], "--epochs must be > 0"),
        (["--dataset", "mnist", "--batch-size", "0"], "--batch-size must be > 0"),
        (["--dataset", "mnist", "--halve-every", "-5"], "--halve-every must be >= 0"),
        (["--dataset", "mnist", "--jit-compile", "yes"], "--jit-compile must be one of auto, on, off"),
    ],
)
def test_invalid_constants(argv, message):
    with pytest.raises(VaevarError, match=message):
        train_first_stage.main(argv)
