"""Hard kills: a two-stage run SIGKILLed at moments drawn from a seeded generator (inside epochs, and inside
checkpoint writes held open by files.HOLD_ENV), resumed after each, ends bit for bit as a straight run:
every array of both stages' final and checkpoint .keras files (weights, Adam's moments and step, gamma's
moving average, the sampler's state), the second stage's kept copy, and log.csv without its seconds. Both
trainers; checkpoints every epoch and every few.

CI delivers CI_KILLS (2) kills to each of two settings (a process start costs seconds of a core): PLAN_SEED gives each
setting one kill in each stage, and the two settings the three kinds. The full run, 20 kills to each of three
settings: VAEVAR_KILLS=20 python -m pytest -n 0 tests/test_kills.py
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest

from tests.conftest import NO_TENSORFLOW, ROOT, TINY, digit_images, jax_environment, run_mains
from vaevar import files

CI_KILLS = 2  # per setting, in CI
KILLS = int(os.environ.get("VAEVAR_KILLS", CI_KILLS))  # per setting
PLAN_SEED = 5  # the kills' plan: with CI_KILLS, both stages a setting and all kinds over the two
HOLD_SECONDS = 0.3  # each checkpoint write held open this long before its rename
KINDS = ("epoch", "model write", "record write")
SETTINGS = {  # trainer, (stage 1's, stage 2's) --checkpoint-every
    "fit": ("fit", (1, 1)),
    "fast": ("fast", (3, 1)),
    "fast, stage 2 every 3": ("fast", (1, 3)),
}
IN_CI = ("fit", "fast")  # the third runs with the full count


@pytest.fixture(scope="module")
def kill_npz(tmp_path_factory):
    """200 images: 20 steps an epoch at batch size 10, long enough to land inside one."""
    path = tmp_path_factory.mktemp("kills") / "mnist.npz"
    images = digit_images(240, seed=7)
    np.savez(path, x_train=images[:200], x_test=images[200:])
    return str(path)


def stage_commands(npz, run_dir, trainer, every, epochs):
    common = ["--dataset", "mnist", "--data-path", npz, "--run-dir", run_dir, "--batch-size", "10"]
    common += ["--halve-every", "3", "--trainer", trainer, "--allow-cpu"]
    first = ["train_first_stage.py", *common, *TINY, "--epochs", str(epochs[0])]
    second = ["train_second_stage.py", *common, "--width", "16", "--verbose", "0", "--learning-rate", "0.001"]
    second += ["--epochs", str(epochs[1]), "--keep-models-at", "2"]
    return [[sys.executable, *argv, "--checkpoint-every", str(n)] for argv, n in zip((first, second), every)]


def environment(trainer, hold):
    env = jax_environment() if trainer == "fast" else dict(os.environ, KERAS_BACKEND="tensorflow")
    return dict(env, CUDA_VISIBLE_DEVICES="", VAEVAR_DATA_DIR="", **{files.HOLD_ENV: str(hold)})


def checkpointed(stage_dir):
    path = os.path.join(stage_dir, "checkpoint.json")
    return json.load(open(path))["epoch"] if os.path.exists(path) else 0


def cut_write(stage_dir, name):
    return any(n.startswith(f".{name}.") and files.is_cut_write(n) for n in os.listdir(stage_dir))


def wait_for(process, stage_dir, kind, started_at):
    """Wait for the kill's moment: a checkpoint past the segment's first epoch (then a random moment in the
    epochs after), or a checkpoint write under way. False if the process ended first."""
    while process.poll() is None:
        if os.path.isdir(stage_dir):
            if kind == "epoch" and checkpointed(stage_dir) > started_at:
                return True
            if kind == "model write" and cut_write(stage_dir, "checkpoint.keras"):
                return True
            if kind == "record write" and cut_write(stage_dir, "checkpoint.json"):
                return True
        time.sleep(0.005)
    return False


def assert_nothing_half_written(stage_dir):
    """What a resume reads is whole: the record parses and the checkpoint's arrays load."""
    if os.path.exists(os.path.join(stage_dir, "checkpoint.json")):
        json.load(open(os.path.join(stage_dir, "checkpoint.json")))
        keras_arrays(os.path.join(stage_dir, "checkpoint.keras"))


def kill_plan(kills, setting):
    """`kills` kills as (stage, kind, fraction of HOLD_SECONDS after the moment), drawn from PLAN_SEED."""
    rng = np.random.default_rng([PLAN_SEED, kills, list(SETTINGS).index(setting)])
    return [
        (int(rng.integers(2)), KINDS[int(rng.integers(3))], float(rng.uniform(0, 1))) for _ in range(kills)
    ]


def test_cis_kills_reach_both_stages_of_each_setting_and_every_kind():
    plans = [kill_plan(CI_KILLS, setting) for setting in IN_CI]
    assert all({stage for stage, _, _ in plan} == {0, 1} for plan in plans)
    assert {kind for plan in plans for _, kind, _ in plan} == set(KINDS)


def run_with_kills(commands, env, plan):
    """Each stage's command rerun until it ends; the plan's kills SIGKILL it on the way. Returns the kills
    made as (stage, kind) and every process's output."""
    made, outputs = [], []
    for stage, command in enumerate(commands):
        stage_dir = os.path.join(command[command.index("--run-dir") + 1], f"stage{stage + 1}")
        todo = [(kind, fraction) for s, kind, fraction in plan if s == stage]
        while True:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            if todo and wait_for(process, stage_dir, todo[0][0], checkpointed(stage_dir)):
                kind, fraction = todo.pop(0)
                time.sleep(fraction * HOLD_SECONDS)  # into the write, or into the epochs after the checkpoint
                process.send_signal(signal.SIGKILL)
                outputs.append(process.communicate(timeout=60)[0])
                made.append((stage, kind))
                assert_nothing_half_written(stage_dir)
                continue
            output = process.communicate(timeout=600)[0]
            outputs.append(output)
            assert process.returncode == 0, output
            break
    return made, outputs


def keras_arrays(path):
    """Every array a .keras file holds (weights, optimizer state, metrics, seed state), by its h5 path."""
    with zipfile.ZipFile(path) as archive:
        weights = io.BytesIO(archive.read("model.weights.h5"))
    arrays = {}
    with h5py.File(weights, "r") as h5:
        h5.visititems(
            lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None
        )
    return arrays


def run_record(run_dir):
    """Per stage: the arrays of its final model, checkpoint and kept copies, and log.csv without seconds."""
    record = {}
    for stage, final in (("stage1", "first_stage.keras"), ("stage2", "second_stage.keras")):
        folder = os.path.join(run_dir, stage)
        for name in (final, "checkpoint.keras", "kept/epoch_2.keras"):
            if os.path.exists(os.path.join(folder, name)):
                record[f"{stage}/{name}"] = keras_arrays(os.path.join(folder, name))
        with open(os.path.join(folder, "log.csv")) as f:
            record[f"{stage}/log.csv"] = [
                {k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)
            ]
    return record


def assert_same(record, other):
    assert record.keys() == other.keys()
    for name, content in record.items():
        if name.endswith("log.csv"):
            assert other[name] == content, name
            continue
        assert other[name].keys() == content.keys(), name
        for array, value in content.items():
            np.testing.assert_array_equal(other[name][array], value, err_msg=f"{name}: {array}")


@pytest.mark.parametrize(
    "setting",
    [
        s
        if s in IN_CI or KILLS >= 20
        else pytest.param(s, marks=pytest.mark.skip(reason="runs with VAEVAR_KILLS=20"))
        for s in SETTINGS
    ],
)
def test_killed_runs_resume_bit_identical(tmp_path, kill_npz, setting):
    trainer, every = SETTINGS[setting]
    if trainer == "fast" and not os.path.isdir(NO_TENSORFLOW):
        pytest.skip("the fast trainer's subprocesses need tests/no_tensorflow")
    # each stage has more checkpoints than kills, so every planned kill finds its moment
    epochs = [n * (KILLS + 2) for n in every]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    # the straight run: both stages' mains in one process (one start-up fewer); the killed run's processes
    # then also show that nothing carries from one stage's main to the next
    mains = [
        [os.path.basename(c[1]).removesuffix(".py"), c[2:]]
        for c in stage_commands(kill_npz, straight, trainer, every, epochs)
    ]
    straight_run = run_mains(mains, environment(trainer, 0))
    assert straight_run.returncode == 0, straight_run.stderr[-3000:]
    commands = stage_commands(kill_npz, killed, trainer, every, epochs)
    made, outputs = run_with_kills(commands, environment(trainer, HOLD_SECONDS), kill_plan(KILLS, setting))
    assert len(made) == KILLS, made
    print(f"{setting}: {len(made)} kills at", made)
    assert_same(run_record(straight), run_record(killed))
    assert not [n for _, _, names in os.walk(killed) for n in names if files.is_cut_write(n)]
    if any(kind != "epoch" for _, kind in made):  # an epoch's kill may land in a write too
        assert any("a write cut off by a hard stop" in out for out in outputs)
