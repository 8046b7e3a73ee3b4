"""vaevar/run_folder.py and the run's checks: checkpoints, resume after SIGTERM / the time budget / a stop between
the checkpoint's two writes (bit-identical), the NaN guard, runs that do not fit together. SIGKILL at random
moments: tests/test_kills.py."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import generate
import train_first_stage
import train_second_stage
from tests.conftest import ROOT, TINY, digit_images, log_epochs, tiny_mnist
from vaevar import errors, layout, run_folder
from vaevar.errors import VaevarError


@pytest.fixture(scope="module")
def slow_npz(tmp_path_factory):
    """Enough images that an epoch lasts a while at batch size 10."""
    path = tmp_path_factory.mktemp("slow") / "mnist.npz"
    images = digit_images(2420, seed=5)
    np.savez(path, x_train=images[:2400], x_test=images[2400:])
    return str(path)


def start_training(slow_npz, run_dir, epochs):
    command = [
        sys.executable,
        "train_first_stage.py",
        "--dataset",
        "mnist",
        "--data-path",
        slow_npz,
        "--run-dir",
        run_dir,
        "--epochs",
        str(epochs),
        "--batch-size",
        "10",
    ] + TINY
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(run_dir, process, epoch, timeout=240):
    state = os.path.join(run_dir, "stage1", "checkpoint.json")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(state) and json.load(open(state))["epoch"] >= epoch:
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError("no checkpoint in time")


SCHEDULE = ["--halve-every", "2", "--limit", "100", "--batch-size", "50"]  # 2 steps an epoch: enough


def stage_flags(mnist_npz):
    """(train_first_stage.py's, train_second_stage.py's) flags of the runs compared here, without --run-dir and
    --epochs: tiny networks, 2 steps an epoch, the learning rate halved after epoch 2."""
    first = ["--dataset", "mnist", "--data-path", mnist_npz] + TINY + SCHEDULE
    second = ["--dataset", "mnist", "--data-path", mnist_npz, "--width", "16", "--verbose", "0"]
    return first, second + ["--learning-rate", "0.001"] + SCHEDULE


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, mnist_npz):
    """Both stages trained 3 epochs in one go each: what every stopped and resumed run here must end as."""
    run_dir = str(tmp_path_factory.mktemp("straight"))
    first, second = stage_flags(mnist_npz)
    train_first_stage.main(first + ["--run-dir", run_dir, "--epochs", "3"])
    train_second_stage.main(second + ["--run-dir", run_dir, "--epochs", "3"])
    return run_dir


def test_a_checkpoint_newer_than_its_record_resumes_from_the_checkpoint(tmp_path, mnist_npz, straight_run):
    """A hard stop between checkpoint.keras and checkpoint.json leaves the model an epoch ahead of its record:
    the resume continues from the model's own step count, and ends as a straight run."""
    argv, _ = stage_flags(mnist_npz)
    cut = str(tmp_path / "cut")
    train_first_stage.main(argv + ["--run-dir", cut, "--epochs", "2"])
    state_path = os.path.join(cut, "stage1", "checkpoint.json")
    state = json.load(open(state_path))
    assert (state["epoch"], state["steps"]) == (2, 4)
    json.dump(
        dict(state, epoch=1, steps=2), open(state_path, "w")
    )  # the record of epoch 1, as the stop left it
    os.unlink(os.path.join(cut, "stage1", "first_stage.keras"))
    stage_dir = os.path.join(cut, "stage1")
    leftover = os.path.join(stage_dir, ".checkpoint.json.ab12cd34.tmp.json")  # the record's write, cut off
    open(leftover, "w").write('{"epo')
    train_first_stage.main(argv + ["--run-dir", cut, "--epochs", "3"])
    assert not os.path.exists(leftover)
    assert log_epochs(stage_dir) == [1, 2, 3]
    straight = stage_state(os.path.join(straight_run, "stage1"), "first_stage.keras")
    resumed = stage_state(stage_dir, "first_stage.keras")
    assert resumed[1:] == straight[1:]
    for a, b in zip(straight[0], resumed[0]):
        np.testing.assert_array_equal(a, b)
    json.dump(dict(state, epoch=1, steps=4), open(state_path, "w"))  # 6 steps are no whole epochs of 4
    with pytest.raises(
        VaevarError, match="holds 6 optimizer steps, .*checkpoint.json names 4 .*different runs"
    ):
        train_first_stage.main(argv + ["--run-dir", cut, "--epochs", "4"])


def test_a_cut_checkpoint_is_named_with_what_to_do(tmp_path, stage1_only, mnist_npz):
    """A checkpoint.keras cut short (a copy or a disk, not our atomic writes) is refused by name."""
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(stage1_only, run_dir)
    checkpoint = os.path.join(run_dir, "stage1", "checkpoint.keras")
    with open(checkpoint, "r+b") as f:
        f.truncate(os.path.getsize(checkpoint) // 2)
    with pytest.raises(
        VaevarError, match=f"cannot load checkpoint from {checkpoint} .*restore it, or delete"
    ):
        train_first_stage.main(tiny_mnist(mnist_npz, run_dir, epochs=2))


def test_sigterm_stops_cleanly_with_a_message(tmp_path, slow_npz):
    run_dir = str(tmp_path / "run")
    process = start_training(slow_npz, run_dir, epochs=50)
    wait_for_checkpoint(run_dir, process, epoch=1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "interrupted by SIGTERM" in output and "rerun the same command to resume" in output
    epochs = log_epochs(os.path.join(run_dir, "stage1"))
    assert epochs == list(range(1, len(epochs) + 1))
    # The signal came early in epoch 2 (240 batches). Keras still calls on_epoch_end for the cut
    # epoch: it must not become a logged, checkpointed epoch 2.
    assert json.load(open(os.path.join(run_dir, "stage1", "checkpoint.json")))["epoch"] == 1
    assert epochs == [1] and "after 1 completed epochs" in output


def test_curves_are_redrawn_at_the_last_checkpoint_and_at_most_every_minute(tmp_path, monkeypatch):
    """A drawing costs about a second: checkpoints of short epochs redraw curves.png only once
    CURVES_EVERY_SECONDS have passed since this process began the stage or last drew it, and always at the
    trainer's last checkpoint; each checkpoint itself is written every time."""
    import types

    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    clock, drawn = [1000.0], []
    monkeypatch.setattr(run_folder, "time", types.SimpleNamespace(time=lambda: clock[0]))
    monkeypatch.setattr(run_folder, "draw_curves", lambda stage_dir: drawn.append(clock[0] - 1000))
    stage_dir = str(tmp_path / "stage1")
    for epoch, seconds in enumerate([0, 30, 61, 90, 100], start=1):
        clock[0] = 1000.0 + seconds
        run_folder.save_checkpoint(model, stage_dir, {"dataset": "mnist"}, epoch, last=epoch == 5)
        assert json.load(open(os.path.join(stage_dir, "checkpoint.json")))["epoch"] == epoch
    assert drawn == [61, 100]


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path):
    from models.second_stage import build_second_stage
    from vaevar.training import LatentBatches, fit, make_optimizer

    model = build_second_stage(latent_dim=4, width=8)
    model.compile(optimizer=make_optimizer(1e-3))
    good = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    stage_dir = str(tmp_path / "stage2")
    meta = {"dataset": "mnist"}
    fit(model, LatentBatches(good, np.ones_like(good), 10, 0), stage_dir, 1, 0, 1e-3, 0, meta, verbose=0)
    last_finite = model.get_weights()
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(VaevarError, match="training diverged .* last good checkpoint .* is kept"):
        fit(
            model,
            LatentBatches(bad, np.ones_like(bad), 10, 0, epoch=1),
            stage_dir,
            3,
            1,
            1e-3,
            0,
            meta,
            verbose=0,
        )
    assert json.load(open(os.path.join(stage_dir, "checkpoint.json")))["epoch"] == 1
    assert log_epochs(stage_dir) == [1]
    kept = run_folder.load_model(os.path.join(stage_dir, "checkpoint.keras"), "checkpoint").get_weights()
    assert all(np.isfinite(w).all() for w in kept)
    for a, b in zip(kept, last_finite):
        np.testing.assert_array_equal(a, b)


def stage_state(stage_dir, model_file):
    """(weights, gamma's moving average, log rows without timings) of a finished stage."""
    model = run_folder.load_model(os.path.join(stage_dir, model_file), "model", "")
    with open(os.path.join(stage_dir, "log.csv")) as f:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return model.get_weights(), float(model.mse_ema.numpy()), rows


def run_state(run_dir):
    """stage_state of both stages of a run."""
    paths = layout.RunPaths(run_dir)
    return [stage_state(stage.dir, stage.model_file) for stage in (paths.stage1, paths.stage2)]


def assert_same_runs(run, other):
    """Both stages: the same log rows (timings aside), gamma's moving average and weights, bit for bit."""
    for (weights, ema, rows), (other_weights, other_ema, other_rows) in zip(run, other):
        assert other_rows == rows and other_ema == ema
        for a, b in zip(weights, other_weights):
            np.testing.assert_array_equal(a, b)


def test_resumed_runs_end_bit_identical_to_straight_runs(tmp_path, mnist_npz, straight_run):
    """1 epoch, then a resume to 3, equals 3 straight epochs for both stages: weights, gamma's moving
    average and log rows, with a learning-rate halving (after epoch 2) inside the resumed span."""
    first, second = stage_flags(mnist_npz)
    run_dir = str(tmp_path / "resumed")
    for epochs in (1, 3):
        train_first_stage.main(first + ["--run-dir", run_dir, "--epochs", str(epochs)])
    for epochs in (1, 3):
        train_second_stage.main(second + ["--run-dir", run_dir, "--epochs", str(epochs)])
    straight = run_state(straight_run)
    for _, _, rows in straight:
        assert [r["learning_rate"] for r in rows] == ["0.001", "0.001", "0.0005"]
    assert_same_runs(straight, run_state(run_dir))


def test_a_run_stopped_at_the_time_budget_resumes_bit_identical(tmp_path, mnist_npz, straight_run):
    """--time-budget counts from the command's start, here long past: each stage trains one epoch, checkpoints
    it and stops (TimeBudgetReached: exit code 75 from a script); the same command without the budget then ends
    as a straight run does, both stages."""
    first, second = stage_flags(mnist_npz)
    run_dir = str(tmp_path / "budgeted")
    for script, argv, stage in ((train_first_stage, first, "stage1"), (train_second_stage, second, "stage2")):
        argv = argv + ["--run-dir", run_dir, "--epochs", "3"]
        with pytest.raises(errors.TimeBudgetReached, match="after epoch 1 of 3: rerun the same command"):
            script.main(argv + ["--time-budget", "1"])
        assert log_epochs(os.path.join(run_dir, stage)) == [1]
        assert json.load(open(os.path.join(run_dir, stage, "checkpoint.json")))["epoch"] == 1
        script.main(argv)
    assert_same_runs(run_state(straight_run), run_state(run_dir))


def test_stage2_without_stage1(tmp_path, mnist_npz):
    with pytest.raises(VaevarError, match="first-stage model not found .* run train_first_stage.py"):
        train_second_stage.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", str(tmp_path)])


def test_second_stage_of_an_older_first_stage_is_refused(tmp_path, mnist_npz, straight_run):
    """A copy of the straight run: reruns of its finished stages keep stage 2 valid; stage 1 continued
    changes its latents, and stage 2 and generate.py refuse the run."""
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(straight_run, run_dir)
    first, second = (argv + ["--run-dir", run_dir] for argv in stage_flags(mnist_npz))
    train_first_stage.main(
        first + ["--epochs", "3"]
    )  # rerun of a finished stage 1: same weights, still valid
    train_second_stage.main(second + ["--epochs", "3"])
    model_path = os.path.join(run_dir, "stage2", "second_stage.keras")
    before = os.path.getmtime(model_path)
    train_first_stage.main(first + ["--epochs", "4"])  # stage 1 continued: its latents changed
    with pytest.raises(VaevarError, match="trained on another first stage .* move .*stage2 away"):
        train_second_stage.main(second + ["--epochs", "4"])
    with pytest.raises(VaevarError, match="trained on another first stage"):
        generate.main(
            ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--num-samples", "8"]
        )
    assert os.path.getmtime(model_path) == before  # nothing of stage 2 overwritten


def test_run_dir_of_another_dataset(stage1_only, cifar_tarball):
    with pytest.raises(VaevarError, match="trained on mnist, not cifar10"):
        train_second_stage.main(
            ["--dataset", "cifar10", "--data-path", cifar_tarball[0], "--run-dir", stage1_only]
        )
    with pytest.raises(VaevarError, match="holds a run with dataset='mnist'"):
        train_first_stage.main(
            [
                "--dataset",
                "cifar10",
                "--data-path",
                cifar_tarball[0],
                "--run-dir",
                stage1_only,
                "--epochs",
                "1",
                "--limit",
                "100",
                "--batch-size",
                "50",
            ]
            + TINY
        )


def test_images_that_do_not_fit_the_model(stage1_only):

    model = run_folder.load_model(os.path.join(stage1_only, "stage1", "first_stage.keras"))
    with pytest.raises(VaevarError, match="model expects \\(28, 28, 1\\)"):
        run_folder.check_image_shape(model, np.zeros((2, 32, 32, 3), np.uint8), "cifar10")


def test_corrupt_model_file_is_reported_and_kept(tmp_path, stage1_only, mnist_npz):
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(stage1_only, run_dir)
    generate_flags = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir]
    generate.main(generate_flags + ["--num-samples", "16"])  # earlier samples, which must survive
    model_path = os.path.join(run_dir, "stage1", "first_stage.keras")
    with open(model_path, "r+b") as f:
        f.truncate(1000)
    before = open(os.path.join(run_dir, "samples", "gen1.npz"), "rb").read()
    with pytest.raises(VaevarError, match="cannot load first-stage model"):
        generate.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir])
    assert open(os.path.join(run_dir, "samples", "gen1.npz"), "rb").read() == before
    assert os.path.getsize(model_path) == 1000
