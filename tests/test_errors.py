"""Bad input gets one line on stderr (`error: ...`), exit code 2, no traceback, and quickly."""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import data
from common import VaevarError
from tests.conftest import ROOT


def run_script(script, *argv, env=None, timeout=120):
    started = time.time()
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), *argv], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT, env=dict(os.environ, **(env or {})))
    return result, time.time() - started


# TensorFlow 2.21 prints these at import whatever TF_CPP_MIN_LOG_LEVEL says: not the project's output.
TENSORFLOW_START_UP = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ")


def assert_one_line_error(result, expected):
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(TENSORFLOW_START_UP)]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
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
    assert (data.TFDS_MIRROR, 443) in attempts and ("www.cs.toronto.edu", 443) in attempts


def test_offline_training_script_says_so_in_one_line(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    if data._reachable(data.TFDS_MIRROR, timeout=2):
        pytest.skip("this machine reaches tensorflow-datasets' mirror: it would download CIFAR-10")
    result, seconds = run_script("train_first_stage.py", "--dataset", "cifar10", "--run-dir", str(tmp_path / "run"),
                                 env={"TFDS_DATA_DIR": str(tmp_path / "tfds"), "VAEVAR_DATA_DIR": ""})
    assert_one_line_error(result, "give a local file with --data-path")
    assert seconds < 60  # the interpreter and TensorFlow start-up included; the check itself is seconds


def test_compute_fid_on_a_file_that_is_not_an_array_archive(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"these are not the samples you are looking for")
    result, seconds = run_script("compute_fid.py", "--samples", str(bad), "--run-dir", str(tmp_path),
                                 "--inception-weights", str(tmp_path / "unused.weights.h5"))
    assert_one_line_error(result, "is not a readable .npz array archive")
    assert seconds < 60
    np.savez(tmp_path / "no_images.npz", pixels=np.zeros((2, 2)))
    result, _ = run_script("compute_fid.py", "--samples", str(tmp_path / "no_images.npz"), "--run-dir",
                           str(tmp_path), "--inception-weights", str(tmp_path / "unused.weights.h5"))
    assert_one_line_error(result, "has no 'images' array")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "corrupt.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    idx = root / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + np.array([10, 28, 28], ">u4").tobytes()
                                                  + bytes(100))
    run = root / "run" / "stage1"
    run.mkdir(parents=True)
    (run / "first_stage.keras").write_bytes(b"not a keras file")
    return root


# (script, argv, what the one line says): the table of bad input in docs/running.md
BAD_INPUT = [
    ("train_first_stage.py", ["--dataset", "imagenet"], "unknown data set 'imagenet'"),
    ("train_first_stage.py", ["--dataset", "cifar10", "--data-path", "{root}/missing.tar.gz"], "does not exist"),
    ("train_first_stage.py", ["--dataset", "cifar10", "--data-path", "{root}/corrupt.tar.gz"],
     "is not a valid CIFAR-10 python tarball"),
    ("train_first_stage.py", ["--dataset", "mnist", "--data-path", "{root}/idx"], "the file is truncated"),
    ("train_first_stage.py", ["--dataset", "mnist", "--epochs", "-1"], "--epochs must be > 0, got -1"),
    ("train_second_stage.py", ["--dataset", "mnist", "--run-dir", "{root}/empty"], "first-stage model not found"),
    ("generate.py", ["--dataset", "mnist", "--run-dir", "{root}/run"], "cannot load first-stage model"),
    ("compute_fid.py", ["--dataset", "mnist", "--run-dir", "{root}/fid", "--num-samples", "1"],
     "at least 2 for FID"),
    ("compute_fid.py", ["--dataset", "mnist", "--run-dir", "{root}/fid", "--samples", "{root}/missing.npz"],
     "not found: run generate.py first"),
]


@pytest.mark.parametrize("script, argv, expected", BAD_INPUT, ids=[f"{s}:{e[:24]}" for s, _, e in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_code_2(bad_files, script, argv, expected):
    result, _ = run_script(script, *[a.format(root=bad_files) for a in argv], env={"VAEVAR_DATA_DIR": ""})
    assert_one_line_error(result, expected)
