"""Bad input gets one line on stderr (`error: ...`), exit code 2, no traceback, and quickly."""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT, run_in_process
from vaevar import data
from vaevar.data import tfds
from vaevar.errors import VaevarError


def run_script(script, *argv, env=None, timeout=600):
    """The script in a new interpreter; the timeout guards against a hang (a start-up under load took 105 s)."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
    )


# TensorFlow 2.21 prints these at import whatever TF_CPP_MIN_LOG_LEVEL says: not the project's output.
TENSORFLOW_START_UP = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ")


def assert_one_line_error(result, expected):
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(TENSORFLOW_START_UP)
    ]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, (
        result.stderr
    )
    assert expected in lines[0]


def test_offline_tensorflow_datasets_fails_within_seconds(tmp_path, monkeypatch):
    """Nothing prepared and no network: the error comes at once, not after tfds' retries."""
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv("VAEVAR_DATA_DIR", raising=False)
    attempts = []

    def offline(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    started = time.time()
    with pytest.raises(VaevarError, match="--data-path"):
        data.load("cifar10", "train")
    assert time.time() - started < 10
    assert (tfds.TFDS_MIRROR, 443) in attempts and ("www.cs.toronto.edu", 443) in attempts


def test_offline_training_script_says_so_in_one_line(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    if tfds.reachable(tfds.TFDS_MIRROR, timeout=2):
        pytest.skip("this machine reaches tensorflow-datasets' mirror: it would download CIFAR-10")
    result = run_script(
        "train_first_stage.py",
        "--dataset",
        "cifar10",
        "--run-dir",
        str(tmp_path / "run"),
        env={"TFDS_DATA_DIR": str(tmp_path / "tfds"), "VAEVAR_DATA_DIR": ""},
    )
    # how fast: the test above times the check itself; a start-up's time here depends on the machine's load
    assert_one_line_error(result, "give a local file with --data-path")


def test_compute_fid_on_a_file_that_is_not_an_array_archive(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"these are not the samples you are looking for")
    result = run_script(
        "compute_fid.py",
        "--samples",
        str(bad),
        "--run-dir",
        str(tmp_path),
        "--inception-weights",
        str(tmp_path / "unused.weights.h5"),
    )
    assert_one_line_error(result, "is not a readable .npz array archive")  # before the (missing) weights
    np.savez(tmp_path / "no_images.npz", pixels=np.zeros((2, 2)))
    result = run_in_process(  # the same script's second case: no new interpreter needed
        "compute_fid.py",
        ["--samples", str(tmp_path / "no_images.npz"), "--run-dir", str(tmp_path)]
        + ["--inception-weights", str(tmp_path / "unused.weights.h5")],
        capsys,
    )
    assert_one_line_error(result, "has no 'images' array")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "corrupt.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    idx = root / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + np.array([10, 28, 28], ">u4").tobytes() + bytes(100)
    )
    run = root / "run" / "stage1"
    run.mkdir(parents=True)
    (run / "first_stage.keras").write_bytes(b"not a keras file")
    return root


# (script, argv, what the one line says): the table of bad input in docs/running.md
BAD_INPUT = [
    ("train_first_stage.py", ["--dataset", "imagenet"], "unknown data set 'imagenet'"),
    (
        "train_first_stage.py",
        ["--dataset", "cifar10", "--data-path", "{root}/missing.tar.gz"],
        "does not exist",
    ),
    (
        "train_first_stage.py",
        ["--dataset", "cifar10", "--data-path", "{root}/corrupt.tar.gz"],
        "is not a valid CIFAR-10 python tarball",
    ),
    ("train_first_stage.py", ["--dataset", "mnist", "--data-path", "{root}/idx"], "the file is truncated"),
    ("train_first_stage.py", ["--dataset", "mnist", "--epochs", "-1"], "--epochs must be > 0, got -1"),
    (
        "train_second_stage.py",
        ["--dataset", "mnist", "--run-dir", "{root}/empty"],
        "first-stage model not found",
    ),
    ("generate.py", ["--dataset", "mnist", "--run-dir", "{root}/run"], "cannot load first-stage model"),
    (
        "compute_fid.py",
        ["--dataset", "mnist", "--run-dir", "{root}/fid", "--num-samples", "1"],
        "at least 2 for FID",
    ),
    (
        "compute_fid.py",
        ["--dataset", "mnist", "--run-dir", "{root}/fid", "--samples", "{root}/missing.npz"],
        "not found: run generate.py first",
    ),
]


@pytest.mark.parametrize("script, argv, expected", BAD_INPUT, ids=[f"{s}:{e[:24]}" for s, _, e in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_code_2(bad_files, script, argv, expected, capsys, monkeypatch):
    monkeypatch.setenv("VAEVAR_DATA_DIR", "")
    assert_one_line_error(run_in_process(script, [a.format(root=bad_files) for a in argv], capsys), expected)


# one row of each script that no other test here starts as a user does (compute_fid.py and
# train_first_stage.py: the tests above), in its own interpreter: what the import prints counts too
AS_USERS_RUN_THEM = [BAD_INPUT[5], BAD_INPUT[6]]


@pytest.mark.parametrize(
    "script, argv, expected", AS_USERS_RUN_THEM, ids=[s for s, _, _ in AS_USERS_RUN_THEM]
)
def test_bad_input_in_a_new_interpreter_is_one_line_and_exit_code_2(bad_files, script, argv, expected):
    result = run_script(script, *[a.format(root=bad_files) for a in argv], env={"VAEVAR_DATA_DIR": ""})
    assert_one_line_error(result, expected)


def tree_digest(root):
    """{relative path: bytes} of every file under root: what a refused command must leave as it was."""
    return {
        os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(root)
        for f in files
    }


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, mnist_npz):
    """Run folders that are wrong in one way each, with real .keras files where the check needs a model."""
    import json

    from models.first_stage import build_first_stage
    from models.second_stage import build_second_stage

    root = tmp_path_factory.mktemp("bad_runs")
    mismatched = root / "mismatched"  # a second stage of another latent size, without its checkpoint.json
    (mismatched / "stage1").mkdir(parents=True)
    (mismatched / "stage2").mkdir()
    build_first_stage((28, 28, 1), latent_dim=8, base_filters=4).save(
        mismatched / "stage1" / "first_stage.keras"
    )
    build_second_stage(latent_dim=4, width=8).save(mismatched / "stage2" / "second_stage.keras")
    corrupt = root / "corrupt" / "stage1"  # a resume point whose model file is damaged
    corrupt.mkdir(parents=True)
    (corrupt / "checkpoint.keras").write_bytes(b"PK\x03\x04 cut short")
    (corrupt / "checkpoint.json").write_text(json.dumps({"dataset": "mnist", "epoch": 1}))
    mnist_run = root / "mnist_run" / "stage1"  # a run of MNIST, scored as if it were CIFAR-10
    mnist_run.mkdir(parents=True)
    (mnist_run / "checkpoint.json").write_text(json.dumps({"dataset": "mnist", "epoch": 3}))
    mixed = root / "mixed"  # an ImageFolder tree of grayscale and RGB images of one size
    from PIL import Image

    for split in ("train", "test"):
        (mixed / split / "a").mkdir(parents=True)
        Image.new("L", (28, 28), 90).save(mixed / split / "a" / "0.png")
        Image.new("RGB", (28, 28), (9, 90, 200)).save(mixed / split / "a" / "1.png")
    return root


# (script, argv, what the one line says): each must leave its folder as it was
BAD_RUNS = [
    (
        "generate.py",
        ["--dataset", "mnist", "--run-dir", "{root}/mismatched"],
        "has 4 latent dimensions, the first stage 8",
    ),
    (
        "train_first_stage.py",
        [
            "--dataset",
            "mnist",
            "--data-path",
            "{mnist}",
            "--run-dir",
            "{root}/corrupt",
            "--epochs",
            "2",
            "--base-filters",
            "4",
        ],
        "cannot load checkpoint from {root}/corrupt/stage1/checkpoint.keras",
    ),
    (
        "compute_fid.py",
        ["--run-dir", "{root}/mnist_run"],
        "was trained on mnist, not cifar10: pass --dataset mnist",
    ),
    (
        "train_first_stage.py",
        ["--dataset", "mnist", "--data-path", "{root}/mixed", "--run-dir", "{root}/unused"],
        "mix grayscale and RGB (channels [1, 3])",
    ),
]


@pytest.mark.parametrize("script, argv, expected", BAD_RUNS, ids=[f"{s}:{e[:24]}" for s, _, e in BAD_RUNS])
def test_bad_run_folder_is_one_line_and_left_as_it_was(
    bad_runs, mnist_npz, script, argv, expected, capsys, monkeypatch
):
    before = tree_digest(bad_runs)
    fill = {"root": bad_runs, "mnist": mnist_npz}
    monkeypatch.setenv("VAEVAR_DATA_DIR", "")
    result = run_in_process(script, [a.format(**fill) for a in argv], capsys)
    assert_one_line_error(result, expected.format(**fill))
    if "checkpoint" in expected:
        assert "delete" in result.stderr and "to start this stage over" in result.stderr
    assert tree_digest(bad_runs) == before


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    """ENOSPC in the middle of writing checkpoint.keras (simulated: the save writes part of the file, then
    fails): the message is one line, exit 2, and the previous checkpoint is the resume point, unchanged."""
    import errno

    import keras

    from models.first_stage import build_first_stage
    from tests.conftest import digit_images
    from vaevar import errors
    from vaevar.layout import StagePaths
    from vaevar.run_folder import load_model
    from vaevar.training import ImageBatches, fit, make_optimizer

    run_dir = str(tmp_path / "stage1")
    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
    model.compile(optimizer=make_optimizer(1e-3))
    batches = ImageBatches(digit_images(20)[..., None], 10, 0)
    fit(model, batches, run_dir, 1, 0, 1e-3, 0, {"dataset": "mnist"}, verbose=0)
    stage = StagePaths(run_dir)
    kept = {path: open(path, "rb").read() for path in (stage.checkpoint, stage.state)}

    def full_disk(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(SystemExit) as stopped:
        errors.run_main(lambda: fit(model, batches, run_dir, 2, 1, 1e-3, 0, {"dataset": "mnist"}, verbose=0))
    monkeypatch.undo()
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no space left on the device writing "), lines
    assert "the previous checkpoint.keras is intact" in lines[0] and "rerun the same command" in lines[0]
    assert {path: open(path, "rb").read() for path in kept} == kept
    # no temporary file left (curves.png: drawn at the checkpoint before)
    assert sorted(os.listdir(run_dir)) == ["checkpoint.json", "checkpoint.keras", "curves.png", "log.csv"]
    assert load_model(stage.checkpoint).optimizer.iterations.numpy() == 2  # epoch 1's 2 steps


def bad_sets(root):
    """Inputs compute_fid.py PATH_A PATH_B must refuse in one line: (argv, what the line says)."""
    from PIL import Image

    good = root / "good"
    good.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(good / f"{i}.png")
    corrupt = root / "corrupt"
    corrupt.mkdir()
    Image.new("RGB", (8, 8)).save(corrupt / "fine.png")
    (corrupt / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "empty").mkdir()
    np.savez(root / "rgba.npz", images=np.zeros((4, 8, 8, 4), np.uint8))
    np.savez(root / "five.npz", images=np.zeros((4, 5, 8, 8), np.uint8))
    diverged = np.full((4, 8, 8, 3), np.nan, np.float32)  # a generator that diverged: all NaN
    np.savez(root / "nan.npz", images=diverged)
    diverged[:, 0, 0, 0] = 0.5  # one good value each, the rest NaN but one inf: counted together
    diverged[0, 1, 1, 1] = np.inf
    np.savez(root / "mostly_nan.npz", images=diverged)
    return [
        ([str(root / "nan.npz"), str(good)], "768 of 768 values are NaN or infinite"),
        ([str(root / "mostly_nan.npz"), str(good)], "764 of 768 values are NaN or infinite"),
        ([str(root / "rgba.npz"), str(good)], "images of shape (4, 8, 8, 4)"),
        ([str(root / "five.npz"), str(good)], "images of shape (4, 5, 8, 8)"),
        ([str(corrupt), str(good)], "cannot read image broken.png"),
        ([str(root / "empty"), str(good)], "no images"),
        ([str(root / "missing"), str(good)], "missing not found"),
        ([str(good)], "give two sets to compare"),
        ([str(good), str(good), "--save-stats", str(root / "s.npz")], "--save-stats takes one PATH"),
    ]


def test_compute_fid_two_sets_refuses_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    """In process (the checks come before the weights and the network): exit 2, one stderr line,
    nothing written, not even the cache."""
    import compute_fid
    from vaevar import errors

    monkeypatch.setenv("VAEVAR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VAEVAR_INCEPTION_WEIGHTS", str(tmp_path / "no_weights_needed.weights.h5"))
    cases = bad_sets(tmp_path)
    before = tree_digest(tmp_path)
    for argv, expected in cases:
        with pytest.raises(SystemExit) as stop:
            errors.run_main(lambda: compute_fid.main(argv))
        lines = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
        assert expected in lines[0], (argv, lines)
    assert tree_digest(tmp_path) == before
    assert not (tmp_path / "cache").exists()


def test_own_images_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    """--dataset images: each bad input of docs/running.md's table, in process (the checks come before any
    training), exit 2, one stderr line, nothing written."""
    import train_first_stage
    from tests.conftest import write_image_folder
    from vaevar import errors

    few, empty, broken = (str(tmp_path / name) for name in ("few", "empty", "broken"))
    write_image_folder(few, count=5)
    os.makedirs(empty)
    write_image_folder(broken, count=5)
    with open(os.path.join(broken, "img_0002.png"), "wb") as f:
        f.write(b"not a png")
    run_dir = str(tmp_path / "run")
    cases = [
        (["--data-path", few], "only 4 training images for batch size 100"),
        (["--data-path", few, "--image-size", "32x64"], "images become squares, give one side"),
        (["--data-path", few, "--image-size", "48"], "give a power of two"),
        (["--data-path", broken], "cannot read image img_0002.png"),
        (["--data-path", empty], "no images"),
        ([], "--dataset images needs --data-path"),
    ]
    before = tree_digest(tmp_path)
    for argv, expected in cases:
        argv = ["--dataset", "images", "--run-dir", run_dir, "--quick", *argv]
        with pytest.raises(SystemExit) as stop:
            errors.run_main(lambda: train_first_stage.main(argv))
        lines = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
        assert expected in lines[0], (argv, lines)
    assert tree_digest(tmp_path) == before and not os.path.exists(run_dir)
    with pytest.raises(SystemExit):
        errors.run_main(lambda: train_first_stage.main(["--dataset", "mnist", "--image-size", "16"]))
    assert "--image-size is for --dataset images" in capsys.readouterr().err
