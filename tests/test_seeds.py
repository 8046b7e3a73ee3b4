"""vaevar/seeds.py and aggregate_runs.py: runs of several seeds, with paired gains; on hand-made fid.json
files whose answers are known."""

import json
import math

import pytest

import aggregate_runs
from vaevar import files, layout, seeds
from vaevar.errors import VaevarError

T_975_DF2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (any table: 4.303)
PROTOCOL = {
    "reference": "mnist",
    "reference_split": "test",
    "n": 960,
    "reference_n": 960,
    "weights_hash": "w" * 64,
    "input_convention": "authors",
}


def write_run(root, name, fids, dataset="mnist", sweep=None, **protocol):
    """A run folder whose fid.json holds `fids` ({set: FID}); KID = FID / 1000, precision 0.5."""
    paths = layout.RunPaths(str(root / name))
    files.save_json(paths.stage1.state, {"dataset": dataset, "epoch": 1})
    entries = {
        label: dict(PROTOCOL, **protocol, fid=fid, kid=fid / 1000, kid_std=0.001, precision=0.5, recall=0.4)
        for label, fid in fids.items()
    }
    files.save_json(paths.fid_results, entries)
    if sweep is not None:
        files.save_json(paths.sweep_file("sweep.json"), sweep)
    return paths.root


def test_mean_sd_and_the_paired_interval_by_hand():
    assert seeds.mean_sd([1.0, 2.0, 3.0]) == {"mean": 2.0, "sd": 1.0, "n": 3}
    assert seeds.mean_sd([4.0]) == {"mean": 4.0, "sd": 0.0, "n": 1}
    gain = seeds.paired_difference([2.0, 1.5, 2.5])  # mean 2, SD 0.5
    half = T_975_DF2 * 0.5 / math.sqrt(3)
    assert gain["ci_low"] == pytest.approx(2 - half) and gain["ci_high"] == pytest.approx(2 + half)
    assert gain["positive"] == 3 and gain["n"] == 3
    t = 2 / (0.5 / math.sqrt(3))  # 6.93 on 2 df: p = 1 - t / sqrt(t^2 + 2), the t(2) distribution's tails
    assert gain["p"] == pytest.approx(1 - t / math.sqrt(t**2 + 2), rel=1e-9)
    one = seeds.paired_difference([3.0])
    assert one["ci_low"] is None and one["p"] is None and one["positive"] == 1


def test_the_paired_interval_excludes_0_where_the_unpaired_spreads_overlap(tmp_path, capsys):
    """Plain 50 / 60 / 70 and renormalized 48 / 58.5 / 67.5: the sides' spreads (SD ~10) overlap by far,
    yet every run gains 1.5 to 2.5, and the paired interval [0.76, 3.24] excludes 0."""
    runs = [
        write_run(tmp_path, f"seed{i}", {"gen2": plain, "gen2_renorm": renormed, "gen1": 80.0 + i})
        for i, (plain, renormed) in enumerate([(50.0, 48.0), (60.0, 58.5), (70.0, 67.5)])
    ]
    summary = aggregate_runs.main([*runs, "--out", str(tmp_path / "out")])
    gain = summary["gains"]["gen2"]["fid"]
    plain, renormed = gain["plain"], gain["renormalized"]
    assert plain["mean"] - plain["sd"] < renormed["mean"] + renormed["sd"]  # unpaired: overlapping
    assert gain["mean"] == pytest.approx(2.0) and gain["ci_low"] == pytest.approx(
        2 - T_975_DF2 * 0.5 / math.sqrt(3)
    )
    assert gain["ci_low"] > 0 and gain["positive"] == 3
    assert summary["gains"]["gen2"]["kid"]["mean"] == pytest.approx(0.002)  # KID = FID / 1000 here
    assert "gen1" not in summary["gains"]  # no renormalized GEN-1 scored: no gain
    assert summary["metrics"]["gen1"]["fid"] == {"mean": 81.0, "sd": 1.0, "n": 3}
    out = capsys.readouterr().out
    assert "| gen2 | fid | 60.00 ± 10.00 | 58.00 ± 9.76 | +2.00 ± 0.50 | [+0.76, +3.24]" in out
    assert "3 of 3" in out
    assert json.load(open(tmp_path / "out" / "aggregate.json"))["gains"]["gen2"]["fid"]["n"] == 3
    assert (tmp_path / "out" / "aggregate.md").read_text() in out


def test_a_tie_is_not_a_positive_gain(tmp_path, capsys):
    """Gains +2, 0 and -1 (a run where renormalizing changed nothing, exactly): one run of three gained."""
    assert seeds.paired_difference([2.0, 0.0, -1.0])["positive"] == 1
    runs = [
        write_run(tmp_path, f"seed{i}", {"gen2": plain, "gen2_renorm": renormed})
        for i, (plain, renormed) in enumerate([(50.0, 48.0), (60.0, 60.0), (70.0, 71.0)])
    ]
    summary = aggregate_runs.main(runs)
    assert summary["gains"]["gen2"]["fid"]["positive"] == summary["gains"]["gen2"]["kid"]["positive"] == 1
    assert "| 1 of 3 |" in capsys.readouterr().out


def test_best_scales_of_the_sweeps(tmp_path):
    def sweep(best):
        return {"kinds": {"gen2": {"best_scale": {"fid": best, "kid": best + 0.1}}}}

    runs = [write_run(tmp_path, f"s{i}", {"gen2": 50.0}, sweep=sweep(b)) for i, b in enumerate((1.2, 1.4))]
    summary = aggregate_runs.main(runs)
    assert summary["best_scales"]["gen2"]["fid"]["mean"] == pytest.approx(1.3)
    assert summary["best_scales"]["gen2"]["kid"]["sd"] == pytest.approx(math.sqrt(0.02))


def test_runs_that_do_not_compare_are_refused_in_one_line(tmp_path):
    mnist = write_run(tmp_path, "a", {"gen2": 50.0})
    other_data = write_run(tmp_path, "b", {"gen2": 50.0}, dataset="fashion_mnist")
    other_n = write_run(tmp_path, "c", {"gen2": 50.0}, n=448)
    with pytest.raises(VaevarError, match="is a fashion_mnist run, .* a mnist one: aggregate one data set"):
        aggregate_runs.main([mnist, other_data])
    with pytest.raises(
        VaevarError, match="was scored with n 448, .* with 960: rescore them under one protocol"
    ):
        aggregate_runs.main([mnist, other_n])
    (tmp_path / "empty").mkdir()
    with pytest.raises(VaevarError, match="fid.json not found: run compute_fid.py on"):
        aggregate_runs.main([mnist, str(tmp_path / "empty")])
    with pytest.raises(VaevarError, match="matches no run directory"):
        aggregate_runs.main([str(tmp_path / "nothing_*")])
    with pytest.raises(VaevarError, match="give the run directories"):
        aggregate_runs.main([])


def test_the_seed_comes_from_the_flag_else_the_array_task():
    assert seeds.task_seed(3, {"SLURM_ARRAY_TASK_ID": "7"}) == 3
    assert seeds.task_seed(None, {"SLURM_ARRAY_TASK_ID": "7"}) == 7
    assert seeds.task_seed(None, {}) is None
    with pytest.raises(VaevarError, match="SLURM_ARRAY_TASK_ID='x' is not a task index: give --seed N"):
        seeds.task_seed(None, {"SLURM_ARRAY_TASK_ID": "x"})


def test_array_tasks_each_get_their_seed_and_folder_then_aggregate(tmp_path, monkeypatch):
    """The per-task command of docs/running.md's SLURM array, for tasks 0 and 1: each step gets the task's
    seed and runs/<dataset>_seed<N>; a plain command keeps runs/<dataset> and seed 0. Then the dependent
    job aggregates runs/mnist_seed* (their fid.json written here: the steps are recorded, not run)."""
    import reproduce

    monkeypatch.chdir(tmp_path)
    steps = []
    monkeypatch.setattr(reproduce, "print_runtime_line", lambda trainer: None)
    monkeypatch.setattr(reproduce, "run_step", lambda name, script, argv, run_dir: steps.append(argv))

    def task(index, *flags):
        steps.clear()
        if index is None:
            monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
        else:
            monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        reproduce.main(["--dataset", "mnist", "--quick", *flags])
        runs = {argv[argv.index("--run-dir") + 1] if "--run-dir" in argv else argv[1] for argv in steps}
        given = {argv[argv.index("--seed") + 1] for argv in steps if "--seed" in argv}
        return runs, given

    assert task(0) == ({"runs/mnist_seed0"}, {"0"})
    assert task(1) == ({"runs/mnist_seed1"}, {"1"})
    assert task(1, "--seed", "5") == ({"runs/mnist_seed5"}, {"5"})  # a seed given wins
    assert task(None) == ({"runs/mnist"}, {"0"})
    for index, (plain, renormed) in enumerate([(60.0, 57.0), (64.0, 60.0)]):
        write_run(tmp_path / "runs", f"mnist_seed{index}", {"gen2": plain, "gen2_renorm": renormed})
    summary = aggregate_runs.main(["runs/mnist_seed*", "--out", "results/mnist_seeds"])
    assert summary["runs"] == ["runs/mnist_seed0", "runs/mnist_seed1"]
    assert summary["gains"]["gen2"]["fid"]["mean"] == pytest.approx(3.5)
