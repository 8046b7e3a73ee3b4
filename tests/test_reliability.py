"""Resume after SIGKILL/SIGTERM, the NaN guard, and the table of bad inputs."""

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
from tests.conftest import ROOT, digit_images
from vaevar import data, errors, files, layout, run_folder, training
from vaevar.errors import VaevarError

TINY = ["--base-filters", "4", "--latent-dim", "8", "--verbose", "0", "--learning-rate", "0.001"]


def log_epochs(stage_dir):
    with open(os.path.join(stage_dir, "log.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


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


def test_sigkill_mid_epoch_then_resume(tmp_path, slow_npz):
    run_dir = str(tmp_path / "run")
    process = start_training(slow_npz, run_dir, epochs=3)
    wait_for_checkpoint(run_dir, process, epoch=1)
    time.sleep(0.5)  # well inside epoch 2 (an epoch takes about 2 s here)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = json.load(open(os.path.join(run_dir, "stage1", "checkpoint.json")))["epoch"]
    assert 1 <= killed_at < 3
    assert not os.path.exists(os.path.join(run_dir, "stage1", "first_stage.keras"))

    resumed = start_training(slow_npz, run_dir, epochs=3)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert f"resuming {os.path.join(run_dir, 'stage1')} after epoch {killed_at}" in output
    assert log_epochs(os.path.join(run_dir, "stage1")) == [1, 2, 3]
    assert json.load(open(os.path.join(run_dir, "stage1", "checkpoint.json")))["epoch"] == 3
    assert os.path.exists(os.path.join(run_dir, "stage1", "first_stage.keras"))


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


# ------------------------------------------------------------- bad input table


@pytest.fixture(scope="module")
def stage1_only(tmp_path_factory, mnist_npz):
    run_dir = str(tmp_path_factory.mktemp("stage1_only"))
    train_first_stage.main(
        [
            "--dataset",
            "mnist",
            "--data-path",
            mnist_npz,
            "--run-dir",
            run_dir,
            "--epochs",
            "1",
            "--limit",
            "100",
            "--batch-size",
            "50",
            "--jit-compile",
            "on",
        ]
        + TINY
    )
    return run_dir


def test_jit_compile_flag_reaches_the_saved_model(stage1_only):
    model = run_folder.load_model(
        os.path.join(stage1_only, layout.STAGE1_DIR, layout.STAGE1_MODEL), "model", ""
    )
    assert model.jit_compile is True
    assert files.load_json(os.path.join(stage1_only, layout.STAGE1_DIR, "config.json"))["jit_compile"] is True


def test_recalibrate_bn_rewrites_only_the_final_models_statistics(stage1_only, tmp_path, mnist_npz):
    """A finished stage 1 rerun with --recalibrate-bn: new batch-norm statistics, same trained weights."""
    import shutil

    shutil.copytree(os.path.join(stage1_only, layout.STAGE1_DIR), tmp_path / layout.STAGE1_DIR)
    train_first_stage.main(
        [
            "--dataset",
            "mnist",
            "--data-path",
            mnist_npz,
            "--run-dir",
            str(tmp_path),
            "--epochs",
            "1",
            "--limit",
            "100",
            "--batch-size",
            "50",
            "--jit-compile",
            "on",
            "--recalibrate-bn",
            "100",
        ]
        + TINY
    )
    stage_dir = tmp_path / layout.STAGE1_DIR
    trained = run_folder.load_model(os.path.join(stage_dir, "checkpoint.keras"), "model", "")
    final = run_folder.load_model(os.path.join(stage_dir, layout.STAGE1_MODEL), "model", "")
    for before, after in zip(trained.trainable_weights, final.trainable_weights):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    moving = [
        (np.asarray(a), np.asarray(b))
        for a, b in zip(trained.non_trainable_weights, final.non_trainable_weights)
        if "moving_mean" in a.path
    ]
    assert moving and all(not np.allclose(a, b) for a, b in moving)
    assert files.load_json(os.path.join(stage_dir, "config.json"))["recalibrate_bn"] == 100
    with pytest.raises(VaevarError, match="--recalibrate-bn must be >= 0"):
        train_first_stage.main(["--dataset", "mnist", "--recalibrate-bn", "-5"])


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


def test_stage2_without_stage1(tmp_path, mnist_npz):
    with pytest.raises(VaevarError, match="first-stage model not found .* run train_first_stage.py"):
        train_second_stage.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", str(tmp_path)])


def test_generate_without_stage2_skips_gen2(stage1_only, mnist_npz, capsys):
    generate.main(
        ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", stage1_only, "--num-samples", "64"]
    )
    assert "GEN-2 skipped" in capsys.readouterr().out
    samples = os.path.join(stage1_only, "samples")
    assert os.path.exists(os.path.join(samples, "rec.npz")) and os.path.exists(
        os.path.join(samples, "gen1_renorm.npz")
    )
    assert not os.path.exists(os.path.join(samples, "gen2.npz"))


def test_second_stage_of_an_older_first_stage_is_refused(tmp_path, mnist_npz):
    run_dir = str(tmp_path / "run")
    common_argv = [
        "--dataset",
        "mnist",
        "--data-path",
        mnist_npz,
        "--run-dir",
        run_dir,
        "--limit",
        "100",
        "--batch-size",
        "50",
    ]
    first_argv = common_argv + TINY
    second_argv = common_argv + ["--width", "16", "--verbose", "0", "--learning-rate", "0.001"]
    train_first_stage.main(first_argv + ["--epochs", "1"])
    train_second_stage.main(second_argv + ["--epochs", "1"])
    train_first_stage.main(
        first_argv + ["--epochs", "1"]
    )  # rerun of a finished stage 1: same weights, still valid
    train_second_stage.main(second_argv + ["--epochs", "1"])
    model_path = os.path.join(run_dir, "stage2", "second_stage.keras")
    before = os.path.getmtime(model_path)
    train_first_stage.main(first_argv + ["--epochs", "2"])  # stage 1 continued: its latents changed
    with pytest.raises(VaevarError, match="trained on another first stage .* move .*stage2 away"):
        train_second_stage.main(second_argv + ["--epochs", "2"])
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
    model_path = os.path.join(run_dir, "stage1", "first_stage.keras")
    with open(model_path, "r+b") as f:
        f.truncate(1000)
    before = open(os.path.join(run_dir, "samples", "gen1.npz"), "rb").read()
    with pytest.raises(VaevarError, match="cannot load first-stage model"):
        generate.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir])
    assert open(os.path.join(run_dir, "samples", "gen1.npz"), "rb").read() == before
    assert os.path.getsize(model_path) == 1000


def test_fid_with_too_few_samples(tmp_path):
    import compute_fid

    with pytest.raises(VaevarError, match="at least 2"):
        compute_fid.main(["--dataset", "mnist", "--run-dir", str(tmp_path), "--num-samples", "1"])


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    from vaevar import files

    path = tmp_path / "result.json"
    files.save_json(path, {"fid": 1.0})
    with pytest.raises(TypeError):
        files.save_json(path, {"fid": object()})
    assert json.load(open(path)) == {"fid": 1.0}
    assert os.listdir(tmp_path) == ["result.json"]


def test_mixed_precision_training_restores_the_global_policy(tmp_path, mnist_npz):
    import keras

    run_dir = str(tmp_path / "mixed")
    train_first_stage.main(
        [
            "--dataset",
            "mnist",
            "--data-path",
            mnist_npz,
            "--run-dir",
            run_dir,
            "--epochs",
            "1",
            "--limit",
            "100",
            "--batch-size",
            "50",
            "--mixed-precision",
        ]
        + TINY
    )
    assert keras.mixed_precision.global_policy().name == "float32"  # generation / FID after it stay float32
    model = run_folder.load_model(os.path.join(run_dir, layout.STAGE1_DIR, layout.STAGE1_MODEL), "model", "")
    assert model.encoder.get_layer("enc_in").compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    with open(os.path.join(run_dir, layout.STAGE1_DIR, "log.csv")) as f:
        row = next(csv.DictReader(f))
    assert np.isfinite(float(row["loss"])) and float(row["mse"]) < 1


def test_steps_per_execution_trains_the_same_model(tmp_path, mnist_npz):
    from vaevar.run_folder import read_log

    # 5 batches per epoch: with 3 steps per execution the last call runs only 2.
    runs = {}
    for steps in (1, 3):
        run_dir = str(tmp_path / f"spe{steps}")
        train_first_stage.main(
            [
                "--dataset",
                "mnist",
                "--data-path",
                mnist_npz,
                "--run-dir",
                run_dir,
                "--epochs",
                "2",
                "--limit",
                "100",
                "--batch-size",
                "20",
                "--steps-per-execution",
                str(steps),
            ]
            + TINY
        )
        stage_dir = os.path.join(run_dir, layout.STAGE1_DIR)
        model = run_folder.load_model(os.path.join(stage_dir, layout.STAGE1_MODEL), "model", "")
        runs[steps] = (model, read_log(os.path.join(stage_dir, "log.csv")))
    assert runs[3][0].steps_per_execution == 3
    # the loop of 3 runs the same step kernels in the same order: the runs agree bit for bit under the three
    # instruction-set settings of tools/portability.py; the tolerance is one float32 rounding of a reordered
    # sum (a reordering that Adam amplifies would need tools/fast_vs_fit.py's rounding reference instead)
    for one, three in zip(runs[1][1], runs[3][1]):
        for column in ("loss", "mse", "gamma", "kl"):
            assert float(three[column]) == pytest.approx(float(one[column]), rel=1e-4), column
    for one, three in zip(runs[1][0].get_weights(), runs[3][0].get_weights()):
        np.testing.assert_allclose(three, one, rtol=1e-4, atol=1e-6)


def stage_state(stage_dir, model_file):
    """(weights, gamma's moving average, log rows without timings) of a finished stage."""
    model = run_folder.load_model(os.path.join(stage_dir, model_file), "model", "")
    with open(os.path.join(stage_dir, "log.csv")) as f:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return model.get_weights(), float(model.mse_ema.numpy()), rows


def run_state(run_dir):
    """stage_state of both stages of a run."""
    return [
        stage_state(os.path.join(run_dir, stage), model)
        for stage, model in (
            (layout.STAGE1_DIR, layout.STAGE1_MODEL),
            (layout.STAGE2_DIR, layout.STAGE2_MODEL),
        )
    ]


def assert_same_runs(run, other):
    """Both stages: the same log rows (timings aside), gamma's moving average and weights, bit for bit."""
    for (weights, ema, rows), (other_weights, other_ema, other_rows) in zip(run, other):
        assert other_rows == rows and other_ema == ema
        for a, b in zip(weights, other_weights):
            np.testing.assert_array_equal(a, b)


def test_resumed_runs_end_bit_identical_to_straight_runs(tmp_path, mnist_npz):
    """1 epoch, then a resume to 3, equals 3 straight epochs for both stages: weights, gamma's moving
    average and log rows, with a learning-rate halving (after epoch 2) inside the resumed span."""
    schedule = ["--halve-every", "2", "--limit", "100", "--batch-size", "50"]  # 2 steps an epoch: enough
    first = ["--dataset", "mnist", "--data-path", mnist_npz] + TINY + schedule
    second = [
        "--dataset",
        "mnist",
        "--data-path",
        mnist_npz,
        "--width",
        "16",
        "--verbose",
        "0",
        "--learning-rate",
        "0.001",
    ] + schedule
    states = {}
    for name, steps in (("straight", [3]), ("resumed", [1, 3])):
        run_dir = str(tmp_path / name)
        for epochs in steps:
            train_first_stage.main(first + ["--run-dir", run_dir, "--epochs", str(epochs)])
        for epochs in steps:
            train_second_stage.main(second + ["--run-dir", run_dir, "--epochs", str(epochs)])
        states[name] = run_state(run_dir)
    for _, _, rows in states["straight"]:
        assert [r["learning_rate"] for r in rows] == ["0.001", "0.001", "0.0005"]
    assert_same_runs(states["straight"], states["resumed"])


def crafted_second_stage(latent_dim, scale, shift):
    """A real second stage whose codes are exact: encoder mu2 = z (sigma ~ 0), decoder z_hat = scale * u + shift."""
    from models.second_stage import build_second_stage

    model = build_second_stage(latent_dim, width=4)
    for part, head, value in ((model.encoder, "mu", 1.0), (model.decoder, "z_hat", scale)):
        kernel, bias = part.get_layer(head).get_weights()
        kernel[:] = 0.0
        kernel[-latent_dim:] = value * np.eye(latent_dim)  # the skip connection's copy of the input
        part.get_layer(head).set_weights([kernel, bias * 0.0 + (shift if head == "z_hat" else 0.0)])
    kernel, bias = model.encoder.get_layer("log_sigma").get_weights()
    model.encoder.get_layer("log_sigma").set_weights([kernel * 0.0, bias * 0.0 - 20.0])
    model.compile(optimizer="adam")
    return model


@pytest.mark.parametrize("applies", [True, False])
def test_the_authors_gate_on_a_real_second_stage(stage1_only, mnist_npz, tmp_path, applies):
    """Variance ratio 3 (z_hat = (mu + mean) / 2) is over 0.25: GEN-2 is rescaled to the target std.
    Ratio 0 (z_hat = mu + 0.1, no variance lost): gen2_renorm is the plain GEN-2."""
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(os.path.join(stage1_only, layout.STAGE1_DIR), os.path.join(run_dir, layout.STAGE1_DIR))
    first = run_folder.load_model(os.path.join(run_dir, layout.STAGE1_DIR, layout.STAGE1_MODEL), "model")
    evaluation = data.load_evaluation("mnist", mnist_npz, 60)
    mu, _ = training.encode(first, evaluation)
    second = (
        crafted_second_stage(first.latent_dim, 0.5, 0.5 * mu.mean(0))
        if applies
        else crafted_second_stage(first.latent_dim, 1.0, 0.1)
    )
    files.save_model(second, os.path.join(run_dir, layout.STAGE2_DIR, layout.STAGE2_MODEL))
    generate.main(
        ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--num-samples", "60"]
    )
    samples = os.path.join(run_dir, layout.SAMPLES_DIR)
    summary = files.load_json(os.path.join(samples, "summary.json"))["kinds"]["gen2"]
    assert summary["variance_loss_ratio"] == pytest.approx(3.0 if applies else 0.0, abs=1e-3)
    assert summary["renormalized"] is applies
    latents = np.load(os.path.join(samples, "latents.npz"))
    plain, renormed = (np.load(os.path.join(samples, f"{k}.npz"))["images"] for k in ("gen2", "gen2_renorm"))
    if applies:
        target = files.load_json(os.path.join(samples, "summary.json"))["target"][0]
        assert np.mean(latents["gen2_renorm"].std(0)) == pytest.approx(target, rel=1e-5)
        assert np.mean(latents["gen2"].std(0)) == pytest.approx(0.5, rel=0.2)  # N(0, I) halved
        assert not np.array_equal(plain, renormed)
    else:
        np.testing.assert_array_equal(latents["gen2_renorm"], latents["gen2"])
        np.testing.assert_array_equal(plain, renormed)


def test_a_run_stopped_at_the_time_budget_resumes_bit_identical(tmp_path, mnist_npz):
    """--time-budget counts from the command's start, here long past: each stage trains one epoch, checkpoints
    it and stops (TimeBudgetReached: exit code 75 from a script); the same command without the budget then ends
    as a straight run does, both stages."""
    small = ["--limit", "100", "--batch-size", "50"]  # 2 steps an epoch: enough to tell runs apart
    first = ["--dataset", "mnist", "--data-path", mnist_npz, "--epochs", "3"] + TINY + small
    second = [
        "--dataset",
        "mnist",
        "--data-path",
        mnist_npz,
        "--width",
        "16",
        "--verbose",
        "0",
        "--learning-rate",
        "0.001",
        "--epochs",
        "3",
    ] + small
    states = {}
    for name in ("straight", "budgeted"):
        run_dir = str(tmp_path / name)
        for script, argv, stage in (
            (train_first_stage, first, layout.STAGE1_DIR),
            (train_second_stage, second, layout.STAGE2_DIR),
        ):
            if name == "budgeted":
                with pytest.raises(
                    errors.TimeBudgetReached, match="after epoch 1 of 3: rerun the same command"
                ):
                    script.main(argv + ["--run-dir", run_dir, "--time-budget", "1"])
                assert log_epochs(os.path.join(run_dir, stage)) == [1]
                assert json.load(open(os.path.join(run_dir, stage, "checkpoint.json")))["epoch"] == 1
            script.main(argv + ["--run-dir", run_dir])
        states[name] = run_state(run_dir)
    assert_same_runs(states["straight"], states["budgeted"])


def run_first_stage(mnist_npz, run_dir, *argv):
    """train_first_stage.py as a user runs it, with the GPUs hidden."""
    command = (
        [
            sys.executable,
            "train_first_stage.py",
            "--dataset",
            "mnist",
            "--data-path",
            mnist_npz,
            "--run-dir",
            run_dir,
        ]
        + TINY
        + list(argv)
    )
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES="", VAEVAR_DATA_DIR=""),
    )


def test_a_run_of_days_on_a_cpu_stops_before_training_unless_insisted(tmp_path, mnist_npz):
    """No GPU and a schedule whose measured steps add up to over 6 h: one line with the estimate and both ways
    on, before anything is written. --allow-cpu trains (here until a 1 s time budget stops it, exit code 75);
    --quick is never stopped."""
    endless = ["--epochs", "50000000"]  # 150 M steps of this tiny model: thousands of hours anywhere
    refused = run_first_stage(mnist_npz, str(tmp_path / "refused"), *endless)
    assert refused.returncode == 2, refused.stderr
    line = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert (
        len(line) == 1
        and "h here (50000000 epochs of 3 steps at" in line[0]
        and "no GPU is visible" in line[0]
    )
    assert "--allow-cpu" in line[0] and "--quick" in line[0]
    assert refused.stdout.splitlines()[0].startswith(
        "backend tensorflow on CPU"
    )  # the first line names the device
    assert not os.path.exists(tmp_path / "refused" / "stage1")
    for insisting in (["--allow-cpu"], ["--quick"]):
        run = run_first_stage(
            mnist_npz, str(tmp_path / insisting[0][2:]), *endless, *insisting, "--time-budget", "1"
        )
        assert run.returncode == errors.EXIT_TIME_BUDGET == 75, run.stderr
        assert "stopped at the time budget after epoch 1 of 50000000" in run.stderr
        assert log_epochs(str(tmp_path / insisting[0][2:] / "stage1")) == [1]


def test_reproduce_says_a_step_refused_before_it_began_left_nothing_to_resume(
    tmp_path, mnist_npz, monkeypatch
):
    """reproduce.py over a stage 1 refused by the CPU estimate: its own line says nothing began (not that a
    rerun resumes) and how to go on; the run folder stays empty."""
    import reproduce

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("VAEVAR_DATA_DIR", "")
    run_dir = tmp_path / "refused"
    argv = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", str(run_dir), "--skip-fid"]
    with pytest.raises(VaevarError) as refused:
        reproduce.main(argv + ["--epochs", "50000000", "--verbose", "0"])
    message = str(refused.value)
    assert message.startswith("stage 1 (train_first_stage.py) stopped before it began")
    assert "nothing to resume" in message and "--quick and --allow-cpu" in message
    assert "resumes" not in message
    assert not os.path.exists(run_dir / "stage1")


def test_auto_trainer_is_fast_on_jax_with_a_gpu(monkeypatch):
    import keras

    from vaevar import fast_training

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(fast_training, "_on_gpu", lambda: True)
    assert fast_training.choose("auto").func is fast_training.fit_fast
    monkeypatch.setattr(fast_training, "_on_gpu", lambda: False)
    assert fast_training.choose("auto") is None
