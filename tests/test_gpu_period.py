"""bench/gpu_period.sh's state handling, with no time for any step (GPU_PERIOD_SECONDS=0: nothing trains): the
state's manifest written at the end and checked before a resume, its parts joined back into the same files.
PYTHON=true: no Python step runs without time, and the device line costs nothing."""

import os
import subprocess

from tests.conftest import ROOT


def period(state, out, **env):
    return subprocess.run(
        ["bash", os.path.join(ROOT, "bench", "gpu_period.sh"), "no_data.zip", str(state), str(out)],
        env=dict(
            os.environ,
            PYTHON="true",
            GPU_PERIOD_SECONDS="0",
            TORCH_SECONDS="0",
            GPU_PERIOD_DIAGNOSE="0",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def files_of(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


def test_the_state_travels_in_parts_and_is_checked_before_a_resume(tmp_path):
    state = tmp_path / "state"
    (state / "stage1").mkdir(parents=True)
    (state / "stage1" / "checkpoint.keras").write_bytes(os.urandom(5000))
    (state / "stage1" / "log.csv").write_text("epoch,loss\n1,2.0\n2,1.5\n")
    done = period(state, tmp_path / "out", GPU_PERIOD_PART_BYTES="2000")
    assert "run\t0\tno time left" in done.stdout, done.stdout + done.stderr
    assert "stage1 epochs 2" in done.stdout
    parts = sorted(os.listdir(tmp_path / "out" / "parts"))
    assert "state.sha256" in parts and len(parts) >= 4  # 5 kB and more in parts of 2 kB, and their sums
    # the next period starts from the parts alone, into an empty folder: the same files, manifest included
    again = period(tmp_path / "state2", tmp_path / "out2", GPU_PERIOD_PARTS=str(tmp_path / "out" / "parts"))
    assert "matches its manifest" in again.stdout, again.stdout + again.stderr
    assert files_of(tmp_path / "state2") == files_of(state)


def test_a_damaged_state_or_part_stops_before_anything_runs(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "checkpoint.keras").write_bytes(b"weights")
    assert period(state, tmp_path / "out", GPU_PERIOD_PART_BYTES="1000").returncode == 0
    (state / "checkpoint.keras").write_bytes(b"weightz")
    damaged = period(state, tmp_path / "out2")
    assert damaged.returncode == 3 and "does not match its manifest.sha256" in damaged.stderr
    assert "==" not in damaged.stdout  # no step ran
    part = sorted((tmp_path / "out" / "parts").glob("state.tar.part*"))[0]
    part.write_bytes(b"x" + part.read_bytes()[1:])
    cut = period(tmp_path / "state3", tmp_path / "out3", GPU_PERIOD_PARTS=str(tmp_path / "out" / "parts"))
    assert cut.returncode == 3 and "do not match their state.sha256" in cut.stderr


def test_parts_join_into_an_empty_folder_only_and_too_many_parts_are_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "checkpoint.keras").write_bytes(b"weights")
    assert period(state, tmp_path / "out", GPU_PERIOD_PART_BYTES="1000").returncode == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "old.keras").write_bytes(b"old")
    kept = period(tmp_path / "other", tmp_path / "out2", GPU_PERIOD_PARTS=str(tmp_path / "out" / "parts"))
    assert kept.returncode == 3 and "is not empty" in kept.stderr
    assert sorted(os.listdir(tmp_path / "other")) == ["old.keras"]
    # a 10 kB tar in 10-byte parts: more than the 1,000 names the parts may have
    refused = period(state, tmp_path / "out3", GPU_PERIOD_PART_BYTES="10")
    assert refused.returncode == 1 and "could not be cut into parts" in refused.stderr
    assert not (tmp_path / "out3" / "parts").exists()
