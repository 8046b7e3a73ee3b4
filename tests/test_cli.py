"""vaevar/cli.py: constants as flags, and their checks."""

import glob
import importlib
import os
import re
import subprocess
import sys

import pytest

import train_first_stage
from tests.conftest import ROOT
from vaevar import cli
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


def seed_flags():
    """(script, flag) for every seed constant (SEED, SPLIT_SEED, ...) of the top-level scripts, read from their
    sources, so that a new one is checked too."""
    found = []
    for script in sorted(glob.glob(os.path.join(ROOT, "*.py"))):
        for line in open(script):
            match = re.match(r"^((?:[A-Z0-9_]+_)?SEED)\s*=", line)
            if match:
                found.append((os.path.basename(script)[:-3], "--" + match.group(1).lower().replace("_", "-")))
    return found


def test_every_script_with_a_seed_flag_is_found():
    flags = seed_flags()
    assert {"train_first_stage", "train_second_stage", "generate", "reproduce"} <= {s for s, _ in flags}
    assert ("train_first_stage", "--split-seed") in flags


@pytest.mark.parametrize("script, flag", seed_flags())
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seeds_outside_numpys_range_are_refused_before_anything_runs(script, flag, seed):
    """numpy takes 0 <= seed < 2**32 and said so late, in a traceback; the flags' check is the first thing
    main does, so no data or model is needed here."""
    module = importlib.import_module(script)
    # a data set that does not exist: were the seed not checked first, the script would stop on it at once,
    # never load, train or run steps
    dataset = ["--dataset", "no_such_data"] if hasattr(module, "DATASET") else []
    with pytest.raises(VaevarError, match=rf"^{flag} must be an integer from 0 to 2\*\*32 - 1 .*got {seed}$"):
        module.main([*dataset, flag, seed])


def test_a_bad_seed_is_one_line_from_the_command():
    """reproduce.py (no Keras to import: a quick process) ends in the one line and exit code 2."""
    result = subprocess.run(
        [sys.executable, "reproduce.py", "--dataset", "no_such_data", "--seed", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    expected = "error: --seed must be an integer from 0 to 2**32 - 1 (4294967295), got -1"
    assert result.stderr.strip() == expected


def test_the_seed_range_ends_at_2_to_the_32_minus_1_and_takes_only_integers():
    assert cli.parse_constants({"SEED": 0}, "", ["--seed", "0"]).seed == 0
    assert cli.parse_constants({"SEED": 0}, "", ["--seed", str(2**32 - 1)]).seed == 2**32 - 1
    with pytest.raises(VaevarError, match="--seed must be an integer .* got 1.5"):  # SEED = None reads floats
        cli.parse_constants({"SEED": None}, "", ["--seed", "1.5"])
