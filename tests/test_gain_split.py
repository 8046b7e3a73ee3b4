"""aggregate_runs.py --split (vaevar/seeds.py split_gain): GEN-2's gain split into its generic and its
second-stage part over first-stage seeds, on hand-made sweep.json files whose answers are computed here."""

import json
import math
import statistics

import pytest

import aggregate_runs
from tests.conftest import SPLIT_SEEDS as SEEDS
from tests.conftest import split_kid_of as kid_of
from tests.conftest import split_sweep_of as sweep_of
from vaevar import files, layout
from vaevar.errors import VaevarError

T_975_DF2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (any table: 4.303)


def write_run(root, name, sweep, weights=None, stage1_epoch=0):
    paths = layout.RunPaths(str(root / name), stage1_epoch=stage1_epoch)
    files.save_json(paths.stage1.state, {"dataset": "fashion_mnist", "epoch": 3})
    files.save_json(paths.stage1.config, {"weights": weights or f"digest-of-{name}"})
    files.save_json(paths.sweep_file("sweep.json"), sweep)
    return paths.root


def paired_by_hand(d):
    mean, sd = statistics.mean(d), statistics.stdev(d)
    half = T_975_DF2 * sd / math.sqrt(len(d))
    t = mean / (sd / math.sqrt(len(d)))
    return mean, sd, mean - half, mean + half, 1 - abs(t) / math.sqrt(t**2 + 2)  # p of t on 2 df


def assert_paired(stat, d):
    mean, sd, low, high, p = paired_by_hand(d)
    assert stat["mean"] == pytest.approx(mean, rel=1e-12) and stat["sd"] == pytest.approx(sd, rel=1e-12)
    assert stat["ci_low"] == pytest.approx(low, rel=1e-9) and stat["ci_high"] == pytest.approx(high, rel=1e-9)
    assert stat["p"] == pytest.approx(p, rel=1e-6) and stat["n"] == 3
    assert stat["positive"] == sum(x > 0 for x in d)


def test_both_views_against_a_hand_computation(tmp_path, capsys):
    runs = [write_run(tmp_path, f"seed{i}", sweep_of(seed)) for i, seed in enumerate(SEEDS)]
    split = aggregate_runs.main([*runs, "--split", "--out", str(tmp_path / "out")])

    # scales: s*_GEN-2 / s_m - s*_REC and s*_GEN-1 / s_matched,GEN-1 - s*_REC (s*: 1.4 but seed 1's GEN-2,
    # 1.2, and seed 2's GEN-2, 1.6: the grid's edge)
    fid = split["views"]["fid"]
    assert_paired(fid["scales"]["gen2_excess"], [1.4 / 1.1 - 1.4, 1.2 / 1.2 - 1.4, 1.6 / 1.3 - 1.4])
    assert_paired(fid["scales"]["gen1_excess"], [1.4 / 0.9 - 1.4, 1.4 / 0.95 - 1.4, 1.4 / 1.0 - 1.4])
    assert fid["scales"]["best"]["rec"] == {"mean": pytest.approx(1.4), "sd": pytest.approx(0.0), "n": 3}
    assert split["best_at_grid_edge"] == ["%s gen2 (fid)" % runs[2], "%s gen2 (kid)" % runs[2]]

    # gains at s_m: seed 0 halfway between 1.0 and 1.2, seed 1 on the grid, seed 2 halfway to 1.4
    gains = {
        "rec": [(20 - 19) / 20, (22 - 20) / 22, (18 - 16) / 18],
        "gen1": [(40 - 38) / 40, (42 - 39) / 42, (38 - 34) / 38],
        "gen2": [(50 - 45) / 50, (55 - 44) / 55, (52 - 42) / 52],
    }
    for kind, by_seed in gains.items():
        assert_paired(fid["gains"][kind], by_seed)
    assert_paired(fid["gains"]["gen2_minus_rec"], [g - r for g, r in zip(gains["gen2"], gains["rec"])])
    assert_paired(fid["gains"]["gen2_minus_gen1"], [g - r for g, r in zip(gains["gen2"], gains["gen1"])])
    # KID the same way on its own values: seed 0's GEN-2, (0.040 - 0.035) / 0.040
    assert split["per_run"][0]["kid"]["gain"]["gen2"] == pytest.approx(0.125, rel=1e-12)
    kid_gen2 = [(kid_of(a) - kid_of(b)) / kid_of(a) for a, b in ((50, 45), (55, 44), (52, 42))]
    assert_paired(split["views"]["kid"]["gains"]["gen2"], kid_gen2)
    # which values were interpolated, and between which grid points
    assert [r["fid"]["interpolated_between"]["rec"] for r in split["per_run"]] == [
        [1.0, 1.2],
        None,
        [1.2, 1.4],
    ]
    assert split["interpolated"] == [f"{runs[i]} {kind}" for i in (0, 2) for kind in ("rec", "gen1", "gen2")]
    assert split["s_m"]["mean"] == pytest.approx(1.2)

    out = capsys.readouterr().out
    mean, sd, low, high, p = paired_by_hand([g - r for g, r in zip(gains["gen2"], gains["rec"])])
    ci = f"[{100 * low:+.3f}, {100 * high:+.3f}]"
    row = f"| FID | GEN-2's - REC's | {100 * mean:+.3f} % ± {100 * sd:.3f} | {ci}"
    assert row in out and f"{runs[2]} gen2 (fid)" in out
    assert "where s_m is not on the grid: here 6 of 9 (run, kind)" in out  # seed 1's s_m is a grid point
    assert (tmp_path / "out" / "split.md").read_text() in out
    assert json.load(open(tmp_path / "out" / "split.json"))["views"]["fid"]["gains"]["gen2"]["n"] == 3


def test_the_gains_read_off_a_parabola_against_a_hand_computation(tmp_path):
    """The curved view: each kind at s_m from the parabola through its three nearest grid points. On the grid
    by 0.2, s_m halfway between two points takes the lower outer one on the tie (seed 0: 0.8, 1.0, 1.2;
    seed 2: 1.0, 1.2, 1.4, not 1.6), and Lagrange's weights are -1/8, 3/4, 3/8; a grid point is its own
    value. GEN-2's check: each interpolation minus GEN-2's measured point (41 in every hand-made sweep)."""
    runs = [write_run(tmp_path, f"seed{i}", sweep_of(seed)) for i, seed in enumerate(SEEDS)]
    split = aggregate_runs.main([*runs, "--split", "--out", str(tmp_path / "out")])

    def parabola(a, b, c):
        return -a / 8 + 3 * b / 4 + 3 * c / 8

    at_s_m = {
        "rec": [parabola(30, 20, 18), 20, parabola(18, 17, 15)],
        "gen1": [parabola(50, 40, 36), 39, parabola(38, 35, 33)],
        "gen2": [parabola(60, 50, 40), 44, parabola(52, 44, 40)],
    }
    at_1 = {"rec": [20, 22, 18], "gen1": [40, 42, 38], "gen2": [50, 55, 52]}
    gains = {k: [(one - m) / one for one, m in zip(at_1[k], at_s_m[k])] for k in at_s_m}
    curved = split["views"]["fid"]["gains_curved"]
    for kind, by_seed in gains.items():
        assert_paired(curved[kind], by_seed)
    assert_paired(curved["gen2_minus_gen1"], [g - r for g, r in zip(gains["gen2"], gains["gen1"])])
    assert_paired(curved["gen2_minus_rec"], [g - r for g, r in zip(gains["gen2"], gains["rec"])])
    assert [r["fid"]["curved"]["through"]["rec"] for r in split["per_run"]] == [
        [0.8, 1.0, 1.2],
        None,
        [1.0, 1.2, 1.4],
    ]
    check = split["views"]["fid"]["gen2_check"]
    assert check["linear_minus_measured"]["mean"] == pytest.approx((45 + 44 + 42) / 3 - 41, rel=1e-12)
    assert check["curved_minus_measured"]["mean"] == pytest.approx((45 + 44 + 41.5) / 3 - 41, rel=1e-12)
    text = (tmp_path / "out" / "split.md").read_text()
    assert "## The same gains read off a parabola" in text and "| 45.00 / 45.00 / 41.00 |" in text


def test_kinds_scored_at_s_m_itself_are_read_not_interpolated(tmp_path, capsys):
    """Sweeps that scored every kind at GEN-2's matched scale (at_gen2_matched) give the gains from those
    scores; if one run lacks one, every run is interpolated as before (all alike), the scores shown beside."""
    measured = {"rec": 19.5, "gen1": 38.5, "gen2": 41.0}
    sweeps = [sweep_of(seed) for seed in SEEDS]
    for seed, sweep in zip(SEEDS, sweeps):
        for kind, value in measured.items():
            sweep["kinds"][kind]["at_gen2_matched"] = {
                "scale": seed["s_m"],
                "fid": value,
                "kid": kid_of(value),
            }
    runs = [write_run(tmp_path, f"seed{i}", sweep) for i, sweep in enumerate(sweeps)]
    split = aggregate_runs.main([*runs, "--split"])
    at_1 = {"rec": [20, 22, 18], "gen1": [40, 42, 38], "gen2": [50, 55, 52]}
    for kind in measured:
        assert_paired(
            split["views"]["fid"]["gains"][kind], [(one - measured[kind]) / one for one in at_1[kind]]
        )
    assert [r["fid"]["read_at_s_m"] for r in split["per_run"]] == [True, True, True]
    assert (
        "scored there where every run's sweep scored every kind at s_m (3 of 3 runs did)"
        in capsys.readouterr().out
    )

    # one run without GEN-1's score: every run interpolated alike, the scores shown as the check
    del sweeps[2]["kinds"]["gen1"]["at_gen2_matched"]
    runs = [write_run(tmp_path / "partial", f"seed{i}", sweep) for i, sweep in enumerate(sweeps)]
    split = aggregate_runs.main([*runs, "--split"])
    assert [r["fid"]["read_at_s_m"] for r in split["per_run"]] == [False, False, False]
    assert split["per_run"][2]["fid"]["scored_at_s_m"] is None
    assert split["per_run"][0]["fid"]["scored_at_s_m"] == measured
    assert_paired(split["views"]["fid"]["gains"]["rec"], [(20 - 19) / 20, (22 - 20) / 22, (18 - 16) / 18])
    out = capsys.readouterr().out
    assert f"{runs[0]}: REC 19.00 / 18.00 / 19.50;" in out
    gen2_minus_gen1 = 100 * ((50 - 41) / 50 - (40 - 38.5) / 40)  # seed 0's scores
    assert (
        f"from the scores: FID {gen2_minus_gen1:+.2f} %, {100 * ((50 - 41) / 50 - (20 - 19.5) / 20):+.2f} %"
        in out
    )


def test_a_kept_first_stages_sweeps_are_split_with_stage1_epoch(tmp_path):
    """--stage1-epoch E reads scale_sweep_stage1_epoch_<E>/: the early first stage's split."""
    runs = [write_run(tmp_path, f"seed{i}", sweep_of(seed), stage1_epoch=10) for i, seed in enumerate(SEEDS)]
    with pytest.raises(VaevarError, match="scale_sweep/sweep.json not found: run sweep_latent_scale.py"):
        aggregate_runs.main([*runs, "--split"])
    split = aggregate_runs.main([*runs, "--split", "--stage1-epoch", "10"])
    assert split["views"]["fid"]["gains"]["gen2"]["n"] == 3


def one_line(runs, match):
    with pytest.raises(VaevarError, match=match) as refused:
        aggregate_runs.main([*runs, "--split"])
    assert "\n" not in str(refused.value)


def test_what_cannot_be_split_is_refused_in_one_line(tmp_path):
    good = [write_run(tmp_path, f"seed{i}", sweep_of(seed)) for i, seed in enumerate(SEEDS)]
    same = write_run(tmp_path, "seed0_again", sweep_of(SEEDS[1]), weights="digest-of-seed0")
    one_line(
        good[:2] + [same], "seed0_again and .*seed0 have the same first stage .*different first-stage seeds"
    )
    one_line(good[:1], "the split pairs over first-stage seeds: give the runs of at least 2, got 1")
    no_gen1 = write_run(tmp_path, "no_gen1", sweep_of(SEEDS[2], kinds=("rec", "gen2")))
    one_line(
        good[:2] + [no_gen1], "has no gen1 sweep: rerun sweep_latent_scale.py with --kinds rec,gen1,gen2"
    )
    no_1 = write_run(tmp_path, "no_1", sweep_of(SEEDS[2], grid=(0.8, 1.2, 1.4, 1.6)))
    one_line(good[:2] + [no_1], "the rec sweep has no point at s = 1; rerun it with 1 in --scales")
    beyond = write_run(tmp_path, "beyond", sweep_of(dict(SEEDS[2], s_m=1.7)))
    one_line(
        good[:2] + [beyond], "GEN-2's matched scale 1.7 lies outside the rec sweep's grid \\(0.8 ... 1.6\\)"
    )
    other_n = write_run(tmp_path, "other_n", dict(sweep_of(SEEDS[2]), num_samples=200))
    one_line(good[:2] + [other_n], "was swept with num_samples 200, .* with 1000: sweep every run alike")
    unfinished = write_run(tmp_path, "unfinished", sweep_of(SEEDS[2]))
    files.save_json(layout.RunPaths(unfinished).stage1.config, {})
    one_line(good[:2] + [unfinished], "records no weights digest: .* first stage has not finished")


def test_copies_of_sweep_json_stand_for_their_runs(tmp_path):
    """A sweep.json kept with the results (its run folder gone) splits as its run does: its own stage1_weights
    tells the first stages apart. Without that digest, with another view among them, or as a plain path
    without --split, it is refused in one line."""
    runs = [write_run(tmp_path, f"seed{i}", sweep_of(seed)) for i, seed in enumerate(SEEDS)]
    copies = []
    for i, seed in enumerate(SEEDS):
        copies.append(str(tmp_path / f"first_{i}_converged.json"))
        files.save_json(copies[-1], dict(sweep_of(seed), stage1_weights=f"digest-of-seed{i}"))
    from_runs = aggregate_runs.main([*runs, "--split"])
    from_copies = aggregate_runs.main([*copies, "--split"])
    assert from_copies["views"] == from_runs["views"] and from_copies["runs"] == copies
    mixed = aggregate_runs.main([runs[0], *copies[1:], "--split"])
    assert mixed["views"] == from_runs["views"]

    twin = str(tmp_path / "twin.json")
    files.save_json(twin, dict(sweep_of(SEEDS[2]), stage1_weights="digest-of-seed0"))
    one_line(copies[:2] + [twin], "twin.json and .*first_0_converged.json have the same first stage")
    anonymous = str(tmp_path / "anonymous.json")
    files.save_json(anonymous, sweep_of(SEEDS[2]))
    one_line(copies[:2] + [anonymous], "anonymous.json records no first-stage weights digest")
    early = str(tmp_path / "first_2_early.json")
    files.save_json(early, dict(sweep_of(SEEDS[2]), stage1_weights="digest-of-early", stage1_epoch=10))
    one_line(copies[:2] + [early], "was swept with stage1_epoch 10, .* with 0: sweep every run alike")
    with pytest.raises(VaevarError, match=r"is not a run directory \(or, with --split, a sweep.json\)"):
        aggregate_runs.main([copies[0], copies[1]])
    with pytest.raises(
        VaevarError, match="is the sweep of stage1_epoch 0, stage2_epoch 0, not the view asked"
    ):
        aggregate_runs.main([*copies, "--split", "--stage1-epoch", "10"])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    one_line(copies[:2] + [str(broken)], "cannot read .*broken.json as a sweep.json")


def test_a_run_folder_and_a_copy_of_its_early_view_are_one_first_stage(tmp_path):
    """A run folder's sweep that records the first stage it swept (the kept epoch-10 copy) is told apart by
    that digest, not by the final first stage's in stage1/config.json: its own copy beside it is refused."""
    early = dict(sweep_of(SEEDS[0]), stage1_weights="digest-of-seed0-epoch10", stage1_epoch=10)
    folder = write_run(tmp_path, "seed0", early, stage1_epoch=10)
    same = str(tmp_path / "first_0_early.json")
    other = str(tmp_path / "first_1_early.json")
    files.save_json(same, early)
    files.save_json(other, dict(early, stage1_weights="digest-of-seed1-epoch10"))
    with pytest.raises(VaevarError, match="have the same first stage"):
        aggregate_runs.main([folder, same, other, "--split", "--stage1-epoch", "10"])
    assert aggregate_runs.main([folder, other, "--split", "--stage1-epoch", "10"])["views"]["fid"]
