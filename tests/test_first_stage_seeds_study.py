"""experiments/first_stage_seeds_study.py: the convergence rule on a log, by hand; a sweep's summary; bad seeds."""

import csv
import os

import pytest

from experiments import first_stage_seeds_study as study
from vaevar.errors import VaevarError


def rows(mse, kl, rates):
    return [
        {"epoch": str(i + 1), "mse": str(m), "kl": str(k), "learning_rate": str(r)}
        for i, (m, k, r) in enumerate(zip(mse, kl, rates))
    ]


def write_log(path, log):
    """A log.csv of `log`'s rows, its folder made."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(log[0]))
        writer.writeheader()
        writer.writerows(log)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_rule_spans_the_last_tenth_at_the_final_rate():
    """20 epochs: the tenth is 2 epochs, so the window is epochs 18-20; MSE 1.000 -> 0.995 (-0.5 %), KL
    10.0 -> 10.05 after 10.08 (+0.5 % change, 0.8 % range): met. KL's range 1.2 %, or a halving inside the
    window, and it is not."""
    mse = [2.0] * 17 + [1.0, 0.998, 0.995]
    kl = [9.0] * 17 + [10.0, 10.08, 10.05]
    rates = [1e-3] * 10 + [5e-4] * 10
    result = study.convergence(rows(mse, kl, rates), tail=0.1, tolerance=0.01)
    assert result["window"] == [18, 20]
    assert result["mse_change"] == pytest.approx(-0.005) and result["kl_change"] == pytest.approx(0.005)
    assert result["kl_range"] == pytest.approx(0.008) and result["converged"]
    assert not study.convergence(rows(mse, kl[:-2] + [10.12, 10.05], rates))["converged"]
    halved_late = [1e-3] * 19 + [5e-4]
    result = study.convergence(rows(mse, kl, halved_late))
    assert not result["final_learning_rate_throughout"] and not result["converged"]
    with pytest.raises(VaevarError, match="too few"):
        study.convergence(rows([1.0], [1.0], [1e-3]))


def test_a_second_stages_latent_distance_has_its_own_rule():
    """20 epochs, distances logged every 2 (the other rows empty): the window (epochs 18-20) holds those of
    18 and 20, 0.80 -> 0.806 (+0.75 %): met, while MSE falls 2 % (the MSE rule not met). 0.80 -> 0.81
    (+1.25 %) is not; a log without distances gets no latent rule."""
    mse = [2.0] * 17 + [1.0, 0.99, 0.98]
    kl = [10.0] * 20
    logged = rows(mse, kl, [5e-4] * 20)
    for row, epoch in zip(logged, range(1, 21)):
        row["latent_fd_gen2"] = "" if epoch % 2 else str({18: 0.80, 20: 0.806}.get(epoch, 0.9))
    result = study.convergence(logged, tail=0.1, tolerance=0.01)
    assert not result["converged"] and result["mse_change"] == pytest.approx(-0.02)
    assert result["latent_fd"] == [0.80, 0.806] and result["latent_fd_converged"]
    assert result["latent_fd_change"] == pytest.approx(0.0075) and result["latent_fd_range"] == pytest.approx(
        0.0075
    )
    logged[-1]["latent_fd_gen2"] = "0.81"
    assert not study.convergence(logged)["latent_fd_converged"]
    assert "latent_fd_converged" not in study.convergence(rows(mse, kl, [5e-4] * 20))
    line = study.table({"rule": "r", "stage1": {"0, its converged view's second stage": result}, "views": {}})
    assert (
        "| 0, its converged view's second stage | 20 | -2.00% | +0.00% | no | +0.75% (0.75%) | yes |" in line
    )


def test_a_sweeps_summary_marks_an_optimum_at_the_grid_edge():
    def point(scale, fid):
        return {"scale": scale, "fid": fid}

    entry = {
        "points": [point(0.8, 30.0), point(1.0, 20.0), point(1.2, 10.0)],
        "best_scale": {"fid": 1.2},
        "noise": {"fid_difference_sd": 0.5},
        "matched_scale": 1.1,
        "scale_at_pixel_variance_ratio_1": 1.15,
        "pixel_variance_ratio_at_best_fid": 1.04,
    }
    inside = dict(entry, points=entry["points"] + [point(1.4, 12.0)])
    summary = study.sweep_summary({"kinds": {"gen2": entry, "rec": inside}})
    assert summary["gen2"]["best_at_grid_edge"] and not summary["rec"]["best_at_grid_edge"]
    assert (summary["gen2"]["fid_s1"], summary["gen2"]["fid_best"]) == (20.0, 10.0)
    assert summary["rec"]["grid"] == [0.8, 1.0, 1.2, 1.4]
    table = study.table(
        {
            "rule": "r",
            "stage1": {"0": {"epochs": 20, "mse_change": -0.005, "kl_change": 0.005, "converged": True}},
            "views": {"converged": {"0": summary}},
        }
    )
    assert (
        "| converged | 0 | gen2 | 1.2 (grid edge) | 20.00 -> 10.00 (0.50) | 1.150 | 1.040 | 1.100 |" in table
    )
    assert "mean +0.050" in table  # best s minus the crossing: 1.2 - 1.15 in both rows


def test_one_first_stage_seed_is_refused_for_the_report_and_a_seed_twice_always(tmp_path, monkeypatch):
    """The split pairs seeds: the report needs two; training or sweeping one seed (a session's share) is
    fine, the same seed twice never."""
    for argv in (
        ["--seeds", "0"],
        ["--seeds", "0", "--step", "report"],
        ["--seeds", "0,0", "--step", "train"],
    ):
        with pytest.raises(VaevarError, match="give different first-stage seeds, at least 2 to report"):
            study.main(argv)
    commands = []
    monkeypatch.setattr(study, "run", lambda script, *argv, backend=None: commands.append(script))
    study.main(["--seeds", "1", "--step", "train", "--views", "early", "--run-dir", str(tmp_path)])
    assert commands == ["train_first_stage.py", "train_second_stage.py"]


def test_a_stage_is_done_only_at_the_requested_epochs(tmp_path):
    """A stage's config.json records the epochs it completed: the same count is done, a longer schedule runs
    the script again (it resumes and goes on), a stage without config.json has not finished."""
    from vaevar import files, layout

    stage = layout.RunPaths(str(tmp_path)).stage2
    assert not study.finished(stage, 200)
    files.save_json(stage.config, {"epochs": 200})
    assert study.finished(stage, 200) and not study.finished(stage, 300)


def test_the_report_remakes_its_numbers_from_the_kept_copies_alone(tmp_path, capsys):
    """The run folders gone, `--step report --views converged` reads the logs and sweep.json copies kept in
    OUT: the rule per stage, each seed's summary and the split (aggregate_runs.py on the copies), the same
    split as aggregate_runs.py gives on them; a missing copy is one line naming both places."""
    import json

    from tests.conftest import SPLIT_SEEDS, split_sweep_of
    from vaevar import files

    out = tmp_path / "out"
    (out / "sweeps").mkdir(parents=True)
    stage1 = rows([1.0] * 35 + [0.9, 0.899, 0.898, 0.897, 0.896], [60.0] * 40, [6.25e-5] * 40)
    for seed, numbers in enumerate(SPLIT_SEEDS):
        for name, log in (
            (f"first_{seed}_stage1_log.csv", stage1),
            (f"first_{seed}_converged_stage2_log.csv", stage1),
        ):
            write_log(out / name, log)
        sweep = split_sweep_of(numbers)
        for entry in sweep["kinds"].values():
            entry.update(
                noise={"fid_difference_sd": 0.5},
                scale_at_pixel_variance_ratio_1=1.1,
                pixel_variance_ratio_at_best_fid=1.05,
            )
        files.save_json(
            out / "sweeps" / f"first_{seed}_converged.json", dict(sweep, stage1_weights=f"d{seed}")
        )
    flags = ["--run-dir", str(tmp_path / "gone"), "--out", str(out), "--step", "report"]
    study.main([*flags, "--views", "converged"])
    written = json.load(open(out / "study.json"))
    assert written["stage1"]["0"]["window"] == [36, 40] and written["stage1"]["0"]["converged"]
    assert written["views"]["converged"]["2"]["gen2"]["best_scale"] == 1.6
    split = json.load(open(out / "converged" / "split.json"))
    import aggregate_runs

    copies = [str(out / "sweeps" / f"first_{seed}_converged.json") for seed in range(3)]
    assert split["views"] == json.loads(json.dumps(aggregate_runs.main([*copies, "--split"])["views"]))
    assert "| 0 | 40 |" in open(out / "table.md").read()

    # The early view too: seed 0's early first stage was trained again (its log kept), the others' are the
    # kept runs' own first ten epochs
    for seed, numbers in enumerate(SPLIT_SEEDS):
        files.copy_file(
            out / f"first_{seed}_converged_stage2_log.csv", out / f"first_{seed}_early_stage2_log.csv"
        )
        early_sweep = files.load_json(out / "sweeps" / f"first_{seed}_converged.json")
        files.save_json(out / "sweeps" / f"first_{seed}_early.json", early_sweep)
    write_log(out / "first_0_early_stage1_log.csv", [dict(row, mse="1.02") for row in stage1[:10]])
    study.main([*flags, "--views", "converged,early", "--early", "10"])
    written = json.load(open(out / "study.json"))
    assert written["early_stage1"]["0"]["trained_again"] and not written["early_stage1"]["1"]["trained_again"]
    assert written["early_stage1"]["0"]["mse_difference"] == pytest.approx(0.02)
    text = open(out / "table.md").read()
    assert "- Early view, first stage 0: trained again (another run); at epoch 10 MSE 1.02 (+2.00%" in text
    assert "- Early view, first stage 1: the kept run's own; at epoch 10 MSE 1 (+0.00%" in text

    (out / "first_1_converged_stage2_log.csv").unlink()
    with pytest.raises(
        VaevarError, match="neither .*gone/first_1/stage2/log.csv nor .*first_1_converged_stage2"
    ):
        study.main([*flags, "--views", "converged"])
    with pytest.raises(VaevarError, match="--views converged,late: give some of converged, early, each once"):
        study.main([*flags, "--views", "converged,late"])


def test_the_report_refuses_a_kept_sweep_of_another_first_stage(tmp_path):
    """A run folder whose first stage finished but is not swept yet, beside a kept sweep copy of another first
    stage (the lost run's, say): refused before any copy is refreshed; the same first stage's copy passes
    this check."""
    from tests.conftest import SPLIT_SEEDS, split_sweep_of
    from vaevar import files, layout

    out = tmp_path / "out"
    copy = out / "sweeps" / "first_0_converged.json"
    files.save_json(copy, dict(split_sweep_of(SPLIT_SEEDS[0]), stage1_weights="lost-run"))
    stage1 = layout.RunPaths(str(tmp_path / "runs" / "first_0")).stage1
    files.save_json(stage1.config, {"epochs": study.STAGE1_EPOCHS, "weights": "new-run"})
    open(stage1.model, "wb").close()
    open(stage1.log, "w").write("new run\n")
    log = out / "first_0_stage1_log.csv"
    log.write_text("kept\n")
    args = study.cli.parse_constants(
        vars(study), study.__doc__, ["--run-dir", str(tmp_path / "runs"), "--out", str(out)]
    )
    args.views = ["converged"]
    with pytest.raises(
        VaevarError, match="first_0_converged.json is the sweep of another first stage .*new-run"
    ):
        study.report(args, [0])
    assert log.read_text() == "kept\n"  # nothing copied over the kept log
    files.save_json(copy, dict(split_sweep_of(SPLIT_SEEDS[0]), stage1_weights="new-run"))
    study.check_copy_is_the_runs(args, 0, "converged")  # the same first stage: no error


def study_args(tmp_path, *argv):
    args = study.cli.parse_constants(
        vars(study),
        study.__doc__,
        ["--run-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), *argv],
    )
    args.views = list(args.views.split(","))
    return args


def test_the_early_view_alone_trains_the_first_stage_to_the_early_epoch_only(tmp_path, monkeypatch):
    """--views early: the first stage is trained to EARLY epochs (kept there), not STAGE1_EPOCHS; one that has
    them is not trained again. With the converged view it is trained on to STAGE1_EPOCHS (resumed). Sweeping
    the converged view of a first stage short of its epochs is one line."""
    from vaevar import files, layout

    commands = []
    monkeypatch.setattr(study, "run", lambda script, *argv, backend=None: commands.append([script, *argv]))
    early = study_args(tmp_path, "--views", "early", "--early", "10", "--stage1-epochs", "40")
    study.train(early, 0)
    first = [c for c in commands if c[0] == "train_first_stage.py"]
    assert len(first) == 1 and first[0][first[0].index("--epochs") + 1] == 10
    assert first[0][first[0].index("--keep-models-at") + 1] == 10
    second = [c for c in commands if c[0] == "train_second_stage.py"]
    assert len(second) == 1 and second[0][second[0].index("--stage1-epoch") + 1] == 10

    stage1 = layout.RunPaths(study.run_dir(early, 0)).stage1
    files.save_json(stage1.config, {"epochs": 10})
    commands.clear()
    study.train(early, 0)
    assert [c[0] for c in commands] == ["train_second_stage.py"]
    both = study_args(tmp_path, "--views", "converged,early", "--early", "10", "--stage1-epochs", "40")
    commands.clear()
    study.train(both, 0)
    assert commands[0][0] == "train_first_stage.py" and commands[0][commands[0].index("--epochs") + 1] == 40
    with pytest.raises(VaevarError, match="has 10 of 40 epochs: train it"):
        study.sweep(both, 0, "converged")


def test_a_first_stage_trained_again_to_its_early_epoch_keeps_the_kept_log(tmp_path):
    """A run folder whose first stage log is the kept log's first epochs (the same run trained again for the
    early view; the seconds differ): the 40-epoch kept log stays and the converged sweep copy is not checked
    against the short run's weights. A log that differs in any number is another run: one line, nothing
    copied."""
    from tests.conftest import SPLIT_SEEDS, split_sweep_of
    from vaevar import files, layout

    args = study_args(tmp_path, "--views", "converged,early", "--early", "10", "--stage1-epochs", "40")
    kept_rows = rows([1.0 - i / 100 for i in range(40)], [60.0 + i for i in range(40)], [5e-4] * 40)
    for i, row in enumerate(kept_rows):
        row["seconds"] = str(50.0 + i)

    kept_log = study.stage1_log_copy(args, 0)
    write_log(kept_log, kept_rows)
    kept_text = open(kept_log).read()
    files.save_json(
        study.sweep_copy(args, 0, "converged") + ".json",
        dict(split_sweep_of(SPLIT_SEEDS[0]), stage1_weights="d40"),
    )
    stage1 = layout.RunPaths(study.run_dir(args, 0)).stage1
    files.save_json(stage1.config, {"epochs": 10, "weights": "d10"})
    open(stage1.model, "wb").close()
    write_log(stage1.log, [dict(row, seconds="9.0") for row in kept_rows[:10]])

    assert study.first_epochs_of(args, 0) == "same"
    study.check_copy_is_the_runs(args, 0, "converged")  # the short run's final is not the converged stage
    assert open(kept_log).read() == kept_text

    other = [dict(row) for row in kept_rows[:10]]
    other[9]["mse"] = "0.9100001"
    write_log(stage1.log, other)
    with pytest.raises(
        VaevarError,
        match="10 epochs are not the first of .*first_0_stage1_log.csv: another run .*--early-trained-again",
    ):
        study.report(args, [0])
    assert open(kept_log).read() == kept_text

    # Taken as the early view's own first stage: its log kept apart, its epoch-10 numbers beside the kept run's
    args.early_trained_again = True
    assert study.first_epochs_of(args, 0) == "again"
    early_log = study.early_stage1_log(args, 0, "again")
    early = study.early_first_stage(args, kept_log, early_log)
    assert open(study.early_log_copy(args, 0)).read() == open(stage1.log).read()
    assert early["trained_again"] and early["kept_run_mse"] == 0.91 and early["mse"] == 0.9100001
    assert early["mse_difference"] == pytest.approx(1e-7 / 0.91) and early["kl_difference"] == 0
    assert open(kept_log).read() == kept_text
    write_log(stage1.log, [dict(row, mse="0.5") for row in kept_rows[:9]])  # not the early epoch's length
    with pytest.raises(VaevarError, match="9 epochs are not the first of"):
        study.first_epochs_of(args, 0)
    # The kept run's own first epochs in the run folder again: the stale copy goes, the differences are 0
    write_log(stage1.log, kept_rows[:10])
    assert study.first_epochs_of(args, 0) == "same"
    early = study.early_first_stage(args, kept_log, study.early_stage1_log(args, 0, "same"))
    assert not early["trained_again"] and not os.path.exists(study.early_log_copy(args, 0))
    assert early["mse"] == 0.91 and early["mse_difference"] == 0


def test_keep_copies_one_seeds_early_view_and_leaves_the_study_alone(tmp_path):
    """--step keep with one seed (a session's share of the early views): its early first stage log, early
    second stage log and early sweep are copied into OUT; the kept converged log, the other seeds' copies and
    study.json stay as they were. Without --early-trained-again the other run is refused, nothing copied."""
    from tests.conftest import SPLIT_SEEDS, split_sweep_of
    from vaevar import files, layout

    out, runs = tmp_path / "out", tmp_path / "runs"
    kept_rows = rows([1.0 - i / 100 for i in range(40)], [60.0 + i for i in range(40)], [5e-4] * 40)
    write_log(out / "first_0_stage1_log.csv", kept_rows)
    files.save_text(out / "study.json", '{"kept": true}\n')
    paths = layout.RunPaths(str(runs / "first_0"), stage1_epoch=10)
    write_log(paths.stage1.log, [dict(row, mse="0.5") for row in kept_rows[:10]])
    files.save_json(paths.stage1.config, {"epochs": 10})
    write_log(paths.stage2.log, kept_rows)
    files.save_json(paths.sweep_file("sweep.json"), split_sweep_of(SPLIT_SEEDS[0]))
    flags = ["--run-dir", str(runs), "--out", str(out), "--seeds", "0", "--views", "early", "--step", "keep"]
    flags += ["--early", "10", "--stage1-epochs", "40"]
    with pytest.raises(VaevarError, match="another run of first-stage seed 0"):
        study.main(flags)
    assert sorted(os.listdir(out)) == ["first_0_stage1_log.csv", "study.json"]

    study.main([*flags, "--early-trained-again"])
    assert open(out / "first_0_early_stage1_log.csv").read() == open(paths.stage1.log).read()
    assert open(out / "first_0_early_stage2_log.csv").read() == open(paths.stage2.log).read()
    assert files.load_json(out / "sweeps" / "first_0_early.json") == split_sweep_of(SPLIT_SEEDS[0])
    assert read_rows(out / "first_0_stage1_log.csv") == kept_rows
    assert open(out / "study.json").read() == '{"kept": true}\n'
