"""vaevar/cpu_time.py: a run of days without a GPU stops before it starts, unless insisted."""

import os

from tests.conftest import TINY, log_epochs, run_in_process
from vaevar import backend, errors


def test_a_run_of_days_on_a_cpu_stops_before_training_unless_insisted(
    tmp_path, mnist_npz, capsys, monkeypatch
):
    """No GPU and a schedule whose measured steps add up to over 6 h: one line with the estimate and both ways
    on, before anything is written. --allow-cpu trains (here until a 1 s time budget stops it, exit code 75);
    --quick is never stopped. train_first_stage.py's main as `python train_first_stage.py` runs it (exit
    codes, output), in this process with the GPU hidden from the check."""
    monkeypatch.setattr(backend, "on_gpu", lambda: False)
    monkeypatch.setenv("VAEVAR_DATA_DIR", "")

    def run_first_stage(run_dir, *argv):
        flags = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, *TINY, *argv]
        return run_in_process("train_first_stage.py", flags, capsys)

    endless = ["--epochs", "50000000"]  # 150 M steps of this tiny model: thousands of hours anywhere
    refused = run_first_stage(str(tmp_path / "refused"), *endless)
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
        run = run_first_stage(str(tmp_path / insisting[0][2:]), *endless, *insisting, "--time-budget", "1")
        assert run.returncode == errors.EXIT_TIME_BUDGET == 75, run.stderr
        assert "stopped at the time budget after epoch 1 of 50000000" in run.stderr
        assert log_epochs(str(tmp_path / insisting[0][2:] / "stage1")) == [1]
