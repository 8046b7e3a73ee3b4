"""vaevar/runtime.py: the runtime settings, their flags in every training script, and reproduce.py passing
them on."""

import dataclasses

import pytest

from vaevar import cli, errors
from vaevar.errors import VaevarError
from vaevar.runtime import RuntimeSettings

# every field away from its default
CHANGED = RuntimeSettings(
    trainer="fit",
    mixed_precision=True,
    mixed_dtype="bfloat16",
    jit_compile="off",
    steps_per_execution=3,
    checkpoint_every=2,
    time_budget=3600,
    allow_cpu=True,
    verbose=0,
)


def test_every_field_has_help_and_changed_differs_in_each():
    for field in dataclasses.fields(RuntimeSettings):
        assert field.metadata.get("help"), field.name
        assert getattr(CHANGED, field.name) != getattr(RuntimeSettings(), field.name), field.name


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trainer": "quick"}, "--trainer must be one of auto, fit, fast, got 'quick'"),
        ({"mixed_dtype": "int8"}, "--mixed-dtype must be one of float16, bfloat16"),
        ({"jit_compile": "yes"}, "--jit-compile must be one of auto, on, off"),
        ({"verbose": 3}, "--verbose must be one of 0, 1, 2"),
        ({"steps_per_execution": 0}, "--steps-per-execution must be > 0, got 0"),
        ({"checkpoint_every": -1}, "--checkpoint-every must be > 0, got -1"),
        ({"time_budget": -5}, "--time-budget must be >= 0, got -5"),
    ],
)
def test_a_bad_value_is_refused_naming_its_flag(change, message):
    with pytest.raises(VaevarError, match=message):
        RuntimeSettings(**change)


def test_jit_is_what_model_compile_takes():
    assert [RuntimeSettings(jit_compile=t).jit for t in ("auto", "on", "off")] == ["auto", True, False]


@pytest.mark.parametrize("script", ["train_first_stage", "train_second_stage", "reproduce"])
def test_each_training_script_takes_every_field_as_a_flag(script):
    """The flags cli.flags_of writes, read by the script's own parser, give the settings back; and with no
    flags, the script's RUNTIME constant."""
    import importlib

    module = importlib.import_module(script)
    constants = vars(module)
    parsed = cli.parse_constants(constants, "", cli.flags_of(CHANGED))
    assert cli.settings_from(parsed, RuntimeSettings) == CHANGED
    assert cli.settings_from(cli.parse_constants(constants, "", []), RuntimeSettings) == module.RUNTIME
    for name in ("MIXED_PRECISION", "TRAINER", "TIME_BUDGET", "VERBOSE"):
        assert name not in constants  # one place: RUNTIME


def test_reproduce_passes_its_runtime_to_both_trainings(monkeypatch, tmp_path):
    """reproduce.py's steps get the runtime flags it was given, the time budget being what is left of its own;
    the steps that do not train get none."""
    import time

    import reproduce
    import train_first_stage

    steps = []
    monkeypatch.setattr(reproduce, "print_runtime_line", lambda trainer: None)
    monkeypatch.setattr(
        reproduce, "run_step", lambda name, script, argv, run_dir: steps.append((script, argv))
    )
    started = time.time()
    monkeypatch.setattr(errors, "_started", started)  # the command's clock, as run_main starts it
    reproduce.main(["--dataset", "mnist", "--run-dir", str(tmp_path), *cli.flags_of(CHANGED)])
    elapsed = time.time() - started
    scripts = [script for script, _ in steps]
    assert scripts == [
        "train_first_stage.py",
        "train_second_stage.py",
        "generate.py",
        "variance_analysis.py",
        "compute_fid.py",
    ]
    for script, argv in steps[:2]:
        given = cli.settings_from(cli.parse_constants(vars(train_first_stage), "", argv), RuntimeSettings)
        assert dataclasses.replace(given, time_budget=CHANGED.time_budget) == CHANGED
        assert CHANGED.time_budget - elapsed - 1 <= given.time_budget <= CHANGED.time_budget
    for script, argv in steps[2:]:
        assert not set(cli.flags_of(CHANGED)) & {a for a in argv if a.startswith("--")}, script
