"""sweep_latent_scale.py: each kind's codes times s, scored; its s = 1 and rule points are generate.py's
images."""

import json
import os
import shutil

import numpy as np
import pytest

import generate
import sweep_latent_scale
from tests.conftest import crafted_second_stage, digit_images
from vaevar import data, files, layout, scale_search
from vaevar.errors import VaevarError
from vaevar.fid.features import check_images, content_digest
from vaevar.run import Run
from vaevar.variance_measures import total_variance

SAMPLES = 16  # images per point, and test images in the reference: a quarter of the test split
AUTO_START = "0.8,1.0,1.2"  # the real --scales auto's start: the fixture's grid, FID still falling at 1.2


@pytest.fixture(scope="module")
def swept(stage1_only, tmp_path_factory, random_inception_weights):
    """A first stage, a crafted second stage (z_hat = 0.7 u; its gate open: variance lost), 64 test images;
    generate.py's samples and a sweep over 1.2, 0.8, 1.0 (not sorted) of SAMPLES images per point."""
    root = tmp_path_factory.mktemp("sweep")
    data_path = str(root / "mnist.npz")
    images = digit_images(236)
    np.savez(data_path, x_train=images[:172], y_train=np.zeros(172), x_test=images[172:], y_test=np.zeros(64))
    run_dir = str(root / "run")
    paths = layout.RunPaths(run_dir)
    shutil.copytree(layout.RunPaths(stage1_only).stage1.dir, paths.stage1.dir)
    first = Run.load(run_dir).first
    files.save_model(crafted_second_stage(first.latent_dim, 0.7, 0.0), paths.stage2.model)
    flags = [
        "--dataset",
        "mnist",
        "--data-path",
        data_path,
        "--run-dir",
        run_dir,
        "--num-samples",
        str(SAMPLES),
    ]
    generate.main(flags)
    sweep_latent_scale.main(
        flags + ["--scales", "1.2,0.8,1.0", "--inception-weights", random_inception_weights]
    )
    return run_dir, flags


def stored_digest(path):
    with np.load(path) as stored:
        return content_digest(check_images(stored["images"]))


def test_the_points_follow_the_grid_and_s1_and_the_rule_are_generate_pys_images(swept):
    run_dir, _ = swept
    paths = layout.RunPaths(run_dir)
    result = json.load(open(paths.sweep_file("sweep.json")))
    assert result["scales"] == [1.2, 0.8, 1.0]
    assert set(result["kinds"]) == set(layout.KINDS)
    # the stages swept, by digest: what lets a copy of sweep.json stand for its run (aggregate_runs --split)
    run = Run.load(run_dir)
    assert result["stage1_weights"] == json.load(open(paths.stage1.config))["weights"]
    assert [result["stage1_weights"], result["stage2_weights"]] == [
        files.weights_digest(run.first),
        files.weights_digest(run.second),
    ]
    for kind, entry in result["kinds"].items():
        points = entry["points"]
        assert [p["scale"] for p in points] == [1.2, 0.8, 1.0]  # each point is its own scale's
        for p in points:
            assert p["latent_std"] == pytest.approx(p["scale"] * entry["codes_mean_std"], rel=1e-6)
            assert p["n"] == SAMPLES and {"fid", "kid", "kid_std", "precision", "recall", "latent_fd"} <= set(
                p
            )
        assert points[2]["images_sha256"] == stored_digest(paths.sample(kind)), kind
        assert entry["rule"]["images_sha256"] == stored_digest(paths.sample(f"{kind}_renorm")), kind
        assert len({p["images_sha256"] for p in points}) == 3  # scaling changes the images
        best = min(points, key=lambda p: p["fid"])["scale"]
        assert entry["best_scale"]["fid"] == best
    # GEN-2's codes are 0.7 u, the test codes' std another: the matched scale brings one to the other
    gen2 = result["kinds"]["gen2"]
    assert gen2["matched_scale"] * gen2["codes_mean_std"] == pytest.approx(result["test_codes_mean_std"])
    assert gen2["matched"]["latent_std"] == pytest.approx(result["test_codes_mean_std"], rel=1e-6)
    assert {"fid", "kid", "latent_fd"} <= set(gen2["matched"])
    assert gen2["rule"]["applied"] and gen2["rule"]["scale"] is not None
    assert result["kinds"]["rec"]["rule"]["scale"] is None  # the authors' REC rule is per pixel
    assert os.path.getsize(paths.sweep_file("sweep.png")) > 0
    table = open(paths.sweep_file("sweep.md")).read()
    assert "## gen2" in table and "| rule |" in table and "| matched |" in table


def test_the_noise_seed_repeats_s1_and_the_minimum_beside_each_difference(swept):
    """s = 1 and the FID minimum scored again with seed 1's codes; the SD of the two seeds' difference, by hand,
    beside every FID - FID(1)."""
    run_dir, _ = swept
    paths = layout.RunPaths(run_dir)
    result = json.load(open(paths.sweep_file("sweep.json")))
    assert result["noise_seed"] == 1
    for kind, entry in result["kinds"].items():
        noise, points = entry["noise"], {p["scale"]: p for p in entry["points"]}
        assert noise["seeds"] == [0, 1]
        assert [r["scale"] for r in noise["repeats"]] == sorted({1.0, entry["best_scale"]["fid"]})
        for r in noise["repeats"]:
            assert r["fid"][0] == points[r["scale"]]["fid"] and r["fid"][1] == r["second_seed_point"]["fid"]
        differences = [r["fid"][1] - r["fid"][0] for r in noise["repeats"]]
        assert noise["fid_difference_sd"] == pytest.approx(np.sqrt(np.mean(np.square(differences))))
        assert noise["fid_sd"] == pytest.approx(noise["fid_difference_sd"] / np.sqrt(2))
        assert noise["pairs"] == len(differences)
        for p in entry["points"] + [entry["rule"], entry["matched"]]:
            assert p["fid_minus_s1"] == pytest.approx(p["fid"] - points[1.0]["fid"])
            assert p["fid_minus_s1_sd"] == noise["fid_difference_sd"]
    gen2 = result["kinds"]["gen2"]["noise"]["repeats"][0]
    assert gen2["second_seed_point"]["images_sha256"] != result["kinds"]["gen2"]["points"][2]["images_sha256"]
    assert result["kinds"]["gen2"]["noise"]["fid_difference_sd"] > 0  # new draws: another FID
    table = open(paths.sweep_file("sweep.md")).read()
    sd = result["kinds"]["gen2"]["noise"]["fid_difference_sd"]
    assert f"| +0.00 ± {sd:.2f} |" in table and "SD of the difference between two seeds' FIDs" in table


def test_a_rerun_reads_every_point_back_and_writes_the_same_sweep(
    swept, random_inception_weights, monkeypatch
):
    """The same command again (as after a stop): every point of every kind, the rule's and the matched ones
    come from scale_sweep/points/, nothing is scored, and sweep.json is the same file."""
    run_dir, flags = swept
    paths = layout.RunPaths(run_dir)
    before = open(paths.sweep_file("sweep.json"), "rb").read()

    def no_scoring(*args, **kwargs):
        raise AssertionError("a point was scored again")

    monkeypatch.setattr(sweep_latent_scale, "scored", no_scoring)
    sweep_latent_scale.main(
        flags + ["--scales", "1.2,0.8,1.0", "--inception-weights", random_inception_weights]
    )
    assert open(paths.sweep_file("sweep.json"), "rb").read() == before
    stored = sorted(os.listdir(paths.sweep_file("points")))
    assert (
        "gen2_s1.200000_seed0.json" in stored and "rec_rule.json" in stored and "gen1_matched.json" in stored
    )


def test_points_from_a_kept_sweep_are_read_back_and_others_refused(
    swept, random_inception_weights, tmp_path, monkeypatch, capsys
):
    """--points-from a kept copy of sweep.json, its run folder's points gone: each point goes into the store
    as the sweep had kept it, nothing is scored, and the sweep is the same. A copy swept with other settings
    or stages is refused in one line, before anything is written."""
    run_dir, _ = swept
    original = layout.RunPaths(run_dir)
    copy, flags = copied_run(swept, tmp_path)
    kept = str(tmp_path / "kept_sweep.json")
    shutil.copy(original.sweep_file("sweep.json"), kept)
    argv = flags + ["--scales", "1.2,0.8,1.0", "--inception-weights", random_inception_weights]

    wrong = dict(json.load(open(kept)), num_samples=2 * SAMPLES)
    files.save_json(str(tmp_path / "other.json"), wrong)
    with pytest.raises(VaevarError, match=f"swept with num_samples {2 * SAMPLES} .this sweep's {SAMPLES}."):
        sweep_latent_scale.main(argv + ["--points-from", str(tmp_path / "other.json")])
    assert not os.path.exists(layout.RunPaths(copy).sweep_file("points"))

    def no_scoring(*args, **kwargs):
        raise AssertionError("a point was scored")

    monkeypatch.setattr(sweep_latent_scale, "scored", no_scoring)
    capsys.readouterr()
    sweep_latent_scale.main(argv + ["--points-from", kept])
    points = layout.RunPaths(copy).sweep_file("points")
    for name in os.listdir(original.sweep_file("points")):  # the files the scoring sweep kept, byte for byte
        assert (
            open(os.path.join(points, name), "rb").read()
            == open(os.path.join(original.sweep_file("points"), name), "rb").read()
        ), name
    again = json.load(open(layout.RunPaths(copy).sweep_file("sweep.json")))
    assert dict(again, run_dir=None) == dict(json.load(open(kept)), run_dir=None)
    count = len(os.listdir(points))
    assert f"{count} points from {kept} put in" in capsys.readouterr().out


def test_a_points_key_changes_with_what_its_score_depends_on(swept, random_inception_weights, tmp_path):
    """sweep_latent_scale.point_key: the same settings give the same key; another sample count, seed, FID
    method, threshold, Inception file, data file or second stage each give another."""
    from vaevar import cli

    run_dir, flags = swept
    weights_flags = ["--inception-weights", random_inception_weights]

    def key(*extra, run=None, weights=random_inception_weights):
        argv = flags + weights_flags + list(extra)
        args = sweep_latent_scale.check_settings(cli.parse_constants(vars(sweep_latent_scale), "", argv))
        run = run or Run.load(run_dir, data_path=args.data_path)
        return sweep_latent_scale.point_key(run, args, weights)

    plain = key()
    assert key() == plain and plain["data_path"] == os.path.abspath(flags[flags.index("--data-path") + 1])
    other_weights = str(tmp_path / "other.weights.h5")
    shutil.copyfile(random_inception_weights, other_weights)
    with open(other_weights, "ab") as f:
        f.write(b"\0")
    other_data = str(tmp_path / "other.npz")
    shutil.copyfile(flags[flags.index("--data-path") + 1], other_data)
    changed = {
        "num_samples": key("--num-samples", "8"),
        "seed": key("--seed", "3"),
        "frechet_method": key("--frechet-method", "sqrtm"),
        "renorm_threshold": key("--renorm-threshold", "0.5"),
        "inception_weights": key(weights=other_weights),
        "data_path": key(run=Run.load(run_dir, data_path=other_data)),
        "second_stage": key(run=Run.load(run_dir, first_only=True, data_path=plain["data_path"])),
    }
    for field, other in changed.items():
        assert other[field] != plain[field], field
        assert {k: v for k, v in other.items() if k != field} == {
            k: v for k, v in plain.items() if k != field
        }


def test_a_point_scored_under_other_settings_is_not_read_back(tmp_path):
    store = scale_search.PointStore(str(tmp_path / "points"), {"num_samples": 16, "first_stage": "ab"})
    scores = iter([{"fid": 1.5}, {"fid": 2.5}])
    assert store.made("rec_s1.000000_seed0", lambda: next(scores)) == {"fid": 1.5}
    assert store.made("rec_s1.000000_seed0", lambda: next(scores)) == {"fid": 1.5} and store.read == 1
    other = scale_search.PointStore(str(tmp_path / "points"), {"num_samples": 32, "first_stage": "ab"})
    assert other.get("rec_s1.000000_seed0") is None
    assert other.made("rec_s1.000000_seed0", lambda: next(scores)) == {"fid": 2.5} and other.read == 0
    assert store.get("rec_s1.000000_seed0") is None  # replaced: the first key's point is gone


def test_the_pixel_variance_ratio_is_the_images_over_the_evaluation_images(swept):
    """Each point's images' per-pixel variance, summed, over the evaluation test images', by hand; and where
    the ratio reaches 1, interpolated between the grid's points."""
    run_dir, flags = swept
    paths = layout.RunPaths(run_dir)
    result = json.load(open(paths.sweep_file("sweep.json")))
    data_path = flags[flags.index("--data-path") + 1]
    test = data.load_evaluation("mnist", data_path, SAMPLES)  # Run.evaluation()'s images: a seeded subset
    data_variance = np.var(test.reshape(SAMPLES, -1) / 255.0, axis=0).sum()
    assert result["data_pixel_variance"] == pytest.approx(data_variance)
    for kind, entry in result["kinds"].items():
        with np.load(paths.sample(kind)) as stored:  # the s = 1 point's images (test_the_points_follow...)
            images = stored["images"].astype(np.float64).reshape(SAMPLES, -1)
        s1 = next(p for p in entry["points"] if p["scale"] == 1.0)
        assert s1["pixel_variance_ratio"] == pytest.approx(np.var(images, axis=0).sum() / data_variance)
        ratios = {p["scale"]: p["pixel_variance_ratio"] for p in entry["points"]}
        crossing = entry["scale_at_pixel_variance_ratio_1"]
        if crossing is not None:
            assert min(ratios) <= crossing <= max(ratios)
        assert entry["pixel_variance_ratio_at_best_fid"] == ratios[entry["best_scale"]["fid"]]
        assert "pixel_variance_ratio" in entry["rule"] and "pixel_variance_ratio" in entry["matched"]
    table = open(paths.sweep_file("sweep.md")).read()
    assert "pixel variance / data's |" in table


def test_pixel_variance_ratio_of_known_images():
    """Two images, 0 and 0.5 everywhere: per-pixel variance 0.0625; the data 0 and 255 (uint8): 0.25."""
    images = np.stack([np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.5)]).astype(np.float16)
    data_images = np.stack([np.zeros((4, 4, 3)), np.full((4, 4, 3), 255)]).astype(np.uint8)
    ratio = sweep_latent_scale.pixel_variance_ratio(images, total_variance(data_images))
    assert ratio == pytest.approx(0.0625 / 0.25)


@pytest.mark.parametrize("lowest_at, added", [(2.25, [1.8, 2.0, 2.2, 2.4]), (0.35, [0.4, 0.2])])
def test_auto_extends_the_grid_until_the_minimum_is_bracketed(lowest_at, added):
    """A parabola whose minimum lies outside the start grid: one step at a time beyond the edge that holds
    the minimum, each scale scored once, until a higher value lies on either side."""
    calls = []

    def parabola(scale):
        calls.append(scale)
        return 50.0 + 10.0 * (scale - lowest_at) ** 2

    settings = scale_search.AutoScales()
    values = scale_search.bracket(parabola, settings, "gen2's FID")
    assert calls == [0.6, 0.8, 1.0, 1.2, 1.4, 1.6] + added
    scales = sorted(values)
    best = scale_search.lowest(values)
    assert abs(best - lowest_at) < 0.1 and scales[0] < best < scales[-1]
    at = scales.index(best)
    assert values[scales[at - 1]] > values[best] < values[scales[at + 1]]


@pytest.mark.parametrize(
    "curve, settings, message",
    [
        (
            lambda s: -s,
            scale_search.AutoScales(max_scale=1.9),
            "gen2's FID still falls at s = 1.9, the bound: the grid cannot bracket its optimum within "
            "--auto-max-scale 1.9; raise --auto-max-scale",
        ),
        (
            lambda s: s,
            scale_search.AutoScales(min_scale=0.5),
            "within --auto-min-scale 0.5; lower --auto-min-scale",
        ),
    ],
)
def test_auto_fails_in_one_line_when_the_minimum_stays_at_the_bound(curve, settings, message):
    with pytest.raises(VaevarError, match=message) as raised:
        scale_search.bracket(curve, settings, "gen2's FID")
    assert "\n" not in str(raised.value)


def test_refinement_halves_the_step_beside_the_minimum_where_the_fids_are_within_the_noise():
    def bowl(scale):
        return (scale - 1.0) ** 2

    values = {s: bowl(s) for s in (0.8, 1.0, 1.2, 1.4)}
    assert scale_search.refine(bowl, dict(values), 0.03, 2) == []  # 0.04 apart: told apart
    assert scale_search.refine(bowl, values, 0.1, 2) == [0.9, 1.1, 0.95, 1.05]  # two rounds, no more
    assert sorted(values) == [0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.4]


def test_seed_noise_and_crossing_by_hand():
    noise = scale_search.seed_noise([(10.0, 11.0), (20.0, 19.5)])
    assert noise["difference_sd"] == pytest.approx(np.sqrt((1.0 + 0.25) / 2))
    assert noise["sd"] == pytest.approx(np.sqrt((1.0 + 0.25) / 2) / np.sqrt(2)) and noise["pairs"] == 2
    assert scale_search.crossing([1.0, 0.6, 0.8], [1.3, 0.5, 0.9]) == pytest.approx(0.85)
    assert scale_search.crossing([0.6, 0.8], [0.5, 0.9]) is None


def copied_run(swept, tmp_path):
    """The fixture's run copied (its sweep stays as the other tests read it), and the flags for the copy. The
    copy's images are the fixture's: the session's statistics cache scores them once. Without the fixture's
    scored points: a rerun would read them back instead of scoring."""
    run_dir, flags = swept
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("points"))
    return copy, [copy if f == run_dir else f for f in flags]


def synthetic_scoring(monkeypatch, curve, noise):
    """The sweep's scoring replaced by FID = curve(scale), plus `noise` for codes other than the first scored
    (the seed's): the script's grid, noise and refinement in seconds, without the Inception network."""
    seed_codes = []

    def scored(run, images, codes, reference, args, weights):
        scale, code = images if isinstance(images, tuple) else (1.0, None)  # the rule's own images
        seed_codes[:] = seed_codes or [code]
        fid = curve(scale) + (0.0 if code in seed_codes else noise)
        return {
            "fid": fid,
            "kid": fid / 1000,
            "kid_std": 0.0,
            "latent_fd": scale,
            "pixel_variance_ratio": scale / 1.9,
        }

    monkeypatch.setattr(sweep_latent_scale, "scaled_images", lambda run, z, scale: (scale, float(z.flat[0])))
    monkeypatch.setattr(sweep_latent_scale, "scored", scored)


def test_auto_extends_measures_the_noise_and_refines_in_the_script(
    swept, tmp_path, monkeypatch, random_inception_weights
):
    """FID 50 + 10 (s - 2.27)^2, the noise seed's 0.25 higher: the grid extends from 1.6 to 2.4, the noise
    (0.25) is measured at s = 1 and 2.2, the refinement adds 2.3 (within 0.25 of 2.2), then 2.25 and 2.35,
    and the new minimum 2.25 is repeated; the pixel variance ratio s / 1.9 reaches 1 at 1.9."""
    copy, flags = copied_run(swept, tmp_path)
    synthetic_scoring(monkeypatch, lambda s: 50 + 10 * (s - 2.27) ** 2, 0.25)
    sweep_latent_scale.main(
        flags + ["--scales", "auto", "--kinds", "gen1", "--inception-weights", random_inception_weights]
    )
    result = json.load(open(layout.RunPaths(copy).sweep_file("sweep.json")))
    assert result["scales"] == "auto" and result["auto"]["max_scale"] == sweep_latent_scale.AUTO_MAX_SCALE
    entry = result["kinds"]["gen1"]
    grid = [0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.25, 2.3, 2.35, 2.4]
    assert entry["scales"] == grid == [p["scale"] for p in entry["points"]]
    assert entry["auto"]["extended"] == [1.8, 2.0, 2.2, 2.4] and entry["auto"]["refined"] == [2.3, 2.25, 2.35]
    assert entry["auto"]["refine_threshold"] == pytest.approx(0.25)
    assert entry["best_scale"]["fid"] == 2.25
    noise = entry["noise"]
    assert [r["scale"] for r in noise["repeats"]] == [1.0, 2.2, 2.25] and noise["pairs"] == 3
    assert noise["fid_difference_sd"] == pytest.approx(0.25) and noise["fid_sd"] == pytest.approx(
        0.25 / 2**0.5
    )
    assert noise["fid_best_minus_s1"] == pytest.approx([10 * 0.02**2 - 10 * 1.27**2] * 2)
    assert noise["fid_best_minus_s1_paired_sd"] == pytest.approx(0, abs=1e-9)
    assert entry["scale_at_pixel_variance_ratio_1"] == pytest.approx(1.9)
    assert entry["pixel_variance_ratio_at_best_fid"] == pytest.approx(2.25 / 1.9)


def test_auto_in_the_script_stops_in_one_line_at_the_bound(
    swept, tmp_path, monkeypatch, random_inception_weights
):
    _, flags = copied_run(swept, tmp_path)
    synthetic_scoring(monkeypatch, lambda s: 50 - s, 0.25)  # FID falls for ever
    with pytest.raises(VaevarError, match="within --auto-max-scale 2; raise --auto-max-scale") as raised:
        sweep_latent_scale.main(
            flags
            + ["--scales", "auto", "--kinds", "gen1", "--auto-max-scale", "2"]
            + ["--inception-weights", random_inception_weights]
        )
    assert "\n" not in str(raised.value) and "gen1's FID still falls at s = 2" in str(raised.value)


def test_auto_on_a_real_run_brackets_the_fid_minimum(swept, tmp_path, random_inception_weights):
    """--scales auto end to end on the tiny run: GEN-1's FID still falls at the start grid's top (the
    fixture's 1.2), so its grid extends until a higher FID lies on either side of the minimum."""
    copy, flags = copied_run(swept, tmp_path)
    sweep_latent_scale.main(
        flags
        + ["--scales", "auto", "--kinds", "gen1", "--auto-start", AUTO_START, "--auto-refine-rounds", "0"]
        + ["--inception-weights", random_inception_weights]
    )
    result = json.load(open(layout.RunPaths(copy).sweep_file("sweep.json")))
    entry = result["kinds"]["gen1"]
    fids = {p["scale"]: p["fid"] for p in entry["points"]}
    scales = sorted(fids)
    assert entry["scales"] == scales == [p["scale"] for p in entry["points"]]
    assert entry["auto"]["extended"] == scales[3:]  # the minimum lay beyond the start grid
    best = entry["best_scale"]["fid"]
    at = scales.index(best)
    assert 0 < at < len(scales) - 1 and fids[scales[at - 1]] > fids[best] < fids[scales[at + 1]]
    assert [r["scale"] for r in entry["noise"]["repeats"]] == sorted({1.0, best})


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--scales", ""], "--scales is empty"),
        (["--scales", "0.8,-1"], "every scale must be > 0"),
        (["--scales", "0.8,0"], "every scale must be > 0"),
        (["--scales", "1,1"], "a scale is given twice"),
        (["--scales", "a,b"], "give comma-separated numbers"),
        (["--kinds", "gen3"], "--kinds gen3: use some of rec, gen1, gen2"),
        (["--scales", "auto", "--auto-max-scale", "1.5"], "must enclose --auto-start"),
        (["--scales", "auto", "--auto-start", "1,2"], "--auto-start: give at least three scales"),
        (["--noise-seed", "0"], "--noise-seed 0 is --seed's: give another sample seed"),
    ],
)
def test_bad_input_is_one_line(swept, extra, message):
    _, flags = swept
    with pytest.raises(VaevarError, match=message):
        sweep_latent_scale.main(flags + extra)


def test_gen2_without_a_second_stage_is_refused(stage1_only, mnist_npz):
    with pytest.raises(VaevarError, match="has no second stage: train it, or pass --kinds rec,gen1"):
        sweep_latent_scale.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", stage1_only])


def test_every_kind_is_scored_at_gen2s_matched_scale(swept):
    """REC and GEN-1 scored at GEN-2's matched scale s_m itself (their own codes times s_m), GEN-2's point
    there being its matched one: what aggregate_runs.py --split reads instead of interpolating."""
    from vaevar import seeds

    run_dir, _ = swept
    paths = layout.RunPaths(run_dir)
    result = json.load(open(paths.sweep_file("sweep.json")))
    s_m = result["kinds"]["gen2"]["matched_scale"]
    assert result["kinds"]["gen2"]["at_gen2_matched"] == result["kinds"]["gen2"]["matched"]
    for kind in ("rec", "gen1"):
        point = result["kinds"][kind]["at_gen2_matched"]
        assert point["scale"] == s_m and point["n"] == SAMPLES
        assert point["latent_std"] == pytest.approx(s_m * result["kinds"][kind]["codes_mean_std"], rel=1e-6)
        assert point["fid_minus_s1"] == pytest.approx(
            point["fid"] - result["kinds"][kind]["points"][2]["fid"]
        )
    assert seeds.measured_at_s_m({"sweep": result}, s_m)
    assert "| GEN-2's matched |" in open(paths.sweep_file("sweep.md")).read()
    assert "rec_at_gen2_matched.json" in os.listdir(paths.sweep_file("points"))
