"""compute_fid.py with fid/score.py, fid/features.py and fid/table.py: scoring sets, caches, the table."""

import json
import os

import numpy as np
import pytest

import compute_fid
from vaevar.errors import VaevarError
from vaevar.fid import features, frechet, score, table, weights


def test_compute_fid_script_identical_sets_and_cache(tmp_path, random_inception_weights, monkeypatch):
    monkeypatch.setenv("VAEVAR_CACHE_DIR", str(tmp_path / "cache"))
    images = np.random.default_rng(7).integers(0, 256, (12, 28, 28, 1), dtype=np.uint8)
    ref = tmp_path / "ref.npz"
    np.savez(ref, images=images)
    argv = [
        "--dataset",
        "mnist",
        "--run-dir",
        str(tmp_path),
        "--samples",
        str(ref),
        "--reference",
        str(ref),
        "--num-samples",
        "12",
        "--inception-weights",
        random_inception_weights,
        "--frechet-method",
        "eig",
    ]
    with pytest.warns(UserWarning):
        compute_fid.main(argv)  # KID by default
    result = json.load(open(tmp_path / "fid.json"))["ref"]
    assert abs(result["fid"]) < 1e-3
    assert result["n"] == 12 and result["weights_hash"] == weights.sha256(random_inception_weights)
    assert {"backend", "device", "seconds", "kid", "kid_std"} <= set(result)
    assert "| KID x 1000 |" in open(tmp_path / "fid_table.md").read()
    # the same images: every point lies in the other set's balls (its own), each set covers the other
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0 and result["density"] >= 1.0
    assert len(os.listdir(score.statistics_cache())) == 1  # the reference's statistics, keyed by content


def test_whole_set_fid_next_to_the_authors_dropped_remainder(tmp_path, random_inception_weights):
    """12 images per side: theirs scores 8 (whole batches of 8), fid_whole_set all 12, from one pass."""
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8)
    samples = (reference // 2 + rng.integers(0, 128, reference.shape)).astype(np.uint8)
    (tmp_path / "samples").mkdir()
    np.savez(tmp_path / "ref.npz", images=reference)
    np.savez(tmp_path / "samples" / "gen1.npz", images=samples)
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--run-dir",
                str(tmp_path),
                "--samples",
                str(tmp_path / "samples" / "gen1.npz"),
                "--reference",
                str(tmp_path / "ref.npz"),
                "--num-samples",
                "12",
                "--drop-remainder",
                "8",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
        pool3 = [
            features.extract_features([images], images.shape[1:], random_inception_weights, 12)
            for images in (reference, samples)
        ]
        kept = frechet.scored_subset(12, 8)  # 4 seeded random images dropped, not the last 4
        authors = frechet.frechet_distance(
            *frechet.statistics(pool3[0][kept]), *frechet.statistics(pool3[1][kept]), method="eig"
        )
        whole = frechet.frechet_distance(
            *frechet.statistics(pool3[0]), *frechet.statistics(pool3[1]), method="eig"
        )
    entry = json.load(open(tmp_path / "fid.json"))["gen1"]
    assert (entry["n"], entry["n_whole_set"], entry["reference_n"], entry["reference_n_whole_set"]) == (
        8,
        12,
        8,
        12,
    )
    assert entry["fid"] == pytest.approx(authors, rel=1e-6) and entry["fid_whole_set"] == pytest.approx(
        whole, rel=1e-6
    )
    assert abs(authors - whole) > 1e-5 * authors  # two computations, not one number twice
    table = open(tmp_path / "fid_table.md").read()
    assert f"| FID, whole sets (n = 12) | - | {whole:.2f} | - |" in table


def test_identical_sample_files_are_scored_once(tmp_path, random_inception_weights, capsys, monkeypatch):
    """gen2_renorm equals gen2 when the authors' rule skips renormalization: one feature pass for both."""
    images = np.random.default_rng(11).integers(0, 256, (12, 28, 28, 1), dtype=np.uint8)
    sets = tmp_path / "samples"
    sets.mkdir()
    for name in ("gen2", "gen2_renorm"):
        np.savez(sets / f"{name}.npz", images=images)
    np.savez(tmp_path / "other.npz", images=images[::-1].copy() // 2)
    passes = []
    original = features.image_features
    monkeypatch.setattr(score, "image_features", lambda *a, **k: passes.append(a[3]) or original(*a, **k))
    samples = ",".join(str(p) for p in (sets / "gen2.npz", sets / "gen2_renorm.npz", tmp_path / "other.npz"))
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--run-dir",
                str(tmp_path),
                "--samples",
                samples,
                "--reference",
                str(tmp_path / "other.npz"),
                "--num-samples",
                "12",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
    result = json.load(open(tmp_path / "fid.json"))
    assert result["gen2"]["fid"] == result["gen2_renorm"]["fid"] > 0
    assert passes == ["reference", "gen2", "other"]
    assert "features are reused" in capsys.readouterr().out
    # a later run: a new file with gen2's images reuses gen2's FIDs, with no feature pass
    np.savez(sets / "gen1_renorm.npz", images=images)
    compute_fid.main(
        [
            "--dataset",
            "mnist",
            "--run-dir",
            str(tmp_path),
            "--samples",
            str(sets / "gen1_renorm.npz"),
            "--reference",
            str(tmp_path / "other.npz"),
            "--num-samples",
            "12",
            "--inception-weights",
            random_inception_weights,
            "--frechet-method",
            "eig",
        ]
    )
    reused = json.load(open(tmp_path / "fid.json"))["gen1_renorm"]
    assert passes == ["reference", "gen2", "other"]
    assert reused["fid"] == result["gen2"]["fid"] and reused["reused_from"] == str(sets / "gen2.npz")
    assert reused["samples"] == str(sets / "gen1_renorm.npz")


def test_rerun_skips_sets_already_scored_and_rescores_changed_ones(
    tmp_path, random_inception_weights, monkeypatch
):
    """An interrupted FID step resumes: a set fid.json holds for the same images is not scored again."""
    rng = np.random.default_rng(5)
    sets = tmp_path / "samples"
    sets.mkdir()
    for name in ("rec", "gen1"):
        np.savez(sets / f"{name}.npz", images=rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8))
    passes = []
    original = features.image_features
    monkeypatch.setattr(score, "image_features", lambda *a, **k: passes.append(a[3]) or original(*a, **k))
    argv = [
        "--dataset",
        "mnist",
        "--run-dir",
        str(tmp_path),
        "--reference",
        str(sets / "rec.npz"),
        "--samples",
        f"{sets / 'rec.npz'},{sets / 'gen1.npz'}",
        "--num-samples",
        "12",
        "--inception-weights",
        random_inception_weights,
        "--frechet-method",
        "eig",
    ]
    with pytest.warns(UserWarning):
        compute_fid.main(argv)
    first = json.load(open(tmp_path / "fid.json"))
    assert passes == ["reference", "rec", "gen1"]

    compute_fid.main(argv)  # same images, same settings: nothing is scored
    assert passes == ["reference", "rec", "gen1"]
    assert json.load(open(tmp_path / "fid.json")) == first

    np.savez(sets / "gen1.npz", images=rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8))
    with pytest.warns(UserWarning):
        compute_fid.main(argv)  # gen1's images changed: only gen1 is scored again
    assert passes == ["reference", "rec", "gen1", "gen1"]
    assert json.load(open(tmp_path / "fid.json"))["gen1"]["samples_sha256"] != first["gen1"]["samples_sha256"]

    with pytest.warns(UserWarning):
        compute_fid.main(argv + ["--rescore"])
    assert passes[4:] == ["rec", "gen1"]


def test_fid_table_puts_gains_next_to_the_papers():
    entry = {"n": 9984, "reference_n": 9984, "weights_hash": "ab" * 32, "input_convention": "authors"}
    results = {
        "rec": dict(entry, fid=60.0),
        "rec_renorm": dict(entry, fid=57.5),
        "gen1": dict(entry, fid=90.0),
    }
    lines = table.fid_table(results, "cifar10").splitlines()
    assert lines[0] == "| | REC | GEN-1 | GEN-2 |"
    assert lines[2] == "| FID | 60.00 | 90.00 | - |"
    assert lines[3] == "| FID renormalized | 57.50 | - | - |"
    assert lines[4] == "| gain (without - with) | +2.50 | - | - |"
    assert lines[5] == "| paper, renormalized | 53.5 | 78.6 | 69.4 |"
    assert lines[6] == "| paper, gain | +0.3 | +1.6 | +0.4 |"
    assert "n = 9984 per side against 9984 reference images" in lines[-1]
    assert "paper" not in table.fid_table(results, "mnist")
    results["rec"].update(precision=0.7, recall=0.4, density=0.9, coverage=0.6)
    results["rec_renorm"].update(precision=0.65, recall=0.5, density=0.8, coverage=0.7)
    lines = table.fid_table(results, "cifar10").splitlines()
    assert "| recall | 0.400 -> 0.500 (+0.100) | - | - |" in lines  # diversity beside fidelity
    assert "| precision | 0.700 -> 0.650 (-0.050) | - | - |" in lines


def test_remainder_dropped_and_float_samples(tmp_path):
    images = np.random.default_rng(10).random((130, 8, 8, 3)).astype(np.float16)
    path = tmp_path / "float.npz"
    np.savez(path, images=images)
    loaded = features.load_source(str(path), "train", 1000)
    batches = list(features.pixel_batches(loaded, 50))
    n, total = features.scored_count(len(loaded), 64), len(loaded)
    assert (n, total) == (128, 130) and sum(
        len(b) for b in batches
    ) == 130  # theirs scores 128, the whole set 130
    np.testing.assert_allclose(batches[0], images[:50].astype(np.float32) * 255.0)  # never rounded to uint8
    np.savez(path, images=images * 2)
    with pytest.raises(VaevarError, match=r"\[0, 1\]"):
        features.load_sample_array(str(path))


def test_reference_cache_follows_the_reference_images_not_the_file_name(
    tmp_path, random_inception_weights, monkeypatch
):
    """Replace the reference file's images and rescore: the cached statistics of the old images are not used."""
    monkeypatch.setenv("VAEVAR_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(21)
    samples = tmp_path / "my_samples.npz"
    reference = tmp_path / "ref.npz"
    np.savez(samples, images=rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8))
    np.savez(reference, images=rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8))

    def fid(run_dir, *extra):
        with pytest.warns(UserWarning):
            compute_fid.main(
                [
                    "--dataset",
                    "mnist",
                    "--run-dir",
                    str(run_dir),
                    "--samples",
                    str(samples),
                    "--reference",
                    str(reference),
                    "--num-samples",
                    "12",
                    "--frechet-method",
                    "eig",
                    "--inception-weights",
                    random_inception_weights,
                    *extra,
                ]
            )
        return json.load(open(os.path.join(run_dir, "fid.json")))["my_samples"]["fid"]

    before = fid(tmp_path / "run")
    np.savez(reference, images=rng.integers(0, 128, (12, 28, 28, 1), dtype=np.uint8))  # same name, new images
    after = fid(tmp_path / "run", "--rescore")
    assert after == pytest.approx(fid(tmp_path / "fresh"), rel=1e-9) and abs(after - before) > 1e-3
    assert len(os.listdir(score.statistics_cache())) == 2


def test_the_images_dropped_to_whole_batches_are_a_seeded_random_few():
    kept = frechet.scored_subset(10000, 9984)
    dropped = np.setdiff1d(np.arange(10000), kept)
    assert len(kept) == 9984 and len(dropped) == 16 and dropped.max() - dropped.min() > 5000
    np.testing.assert_array_equal(kept, frechet.scored_subset(10000, 9984))
    np.testing.assert_array_equal(frechet.scored_subset(70, 70), np.arange(70))


def test_both_references_in_one_run(tmp_path, mnist_npz, random_inception_weights):
    """Against the test split (the authors' 2020-05 code) and random training images (their 2020-02 code)."""
    from vaevar import data

    rng = np.random.default_rng(30)
    (tmp_path / "samples").mkdir()
    samples = tmp_path / "samples" / "gen1.npz"
    np.savez(samples, images=rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8))
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--data-path",
                mnist_npz,
                "--run-dir",
                str(tmp_path),
                "--samples",
                str(samples),
                "--num-samples",
                "12",
                "--drop-remainder",
                "1",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
        entry = json.load(open(tmp_path / "fid.json"))["gen1"]
        pool3 = {
            split: features.extract_features(
                [data.load_evaluation("mnist", mnist_npz, 12, split)],
                (28, 28, 1),
                random_inception_weights,
                12,
            )
            for split in ("test", "train")
        }
        ours = features.extract_features(
            [np.load(samples)["images"]], (28, 28, 1), random_inception_weights, 12
        )
    for split, key in (("test", "fid"), ("train", "fid_train_reference")):
        expected = frechet.frechet_distance(
            *frechet.statistics(pool3[split]), *frechet.statistics(ours), method="eig"
        )
        assert entry[key] == pytest.approx(expected, rel=1e-6)
    assert abs(entry["fid"] - entry["fid_train_reference"]) > 1e-3
    assert "| FID against training images | - |" in open(tmp_path / "fid_table.md").read()


# ------------------------------------------------------------------ two sets, as pytorch-fid users compare


def png_folder(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return str(folder)


def printed(capsys, prefix):
    """The value after `prefix` on compute_fid.py's output line that starts with it."""
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(prefix))
    return line, float(line.split()[1])


def test_two_folders_and_saved_statistics(tmp_path, random_inception_weights, capsys, monkeypatch):
    """The same images: FID ~0, precision = recall = 1. A folder against B's saved statistics: the FID of
    the folder against B. Nothing is written but the cache and the statistics asked for."""
    monkeypatch.setenv("VAEVAR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(40)
    a_images = rng.integers(0, 256, (12, 28, 28, 3), dtype=np.uint8)
    a = png_folder(tmp_path / "a", a_images)
    b = png_folder(tmp_path / "b", rng.integers(0, 200, (10, 28, 28, 3), dtype=np.uint8))
    flags = ["--inception-weights", random_inception_weights, "--frechet-method", "eig"]
    copy = png_folder(tmp_path / "a_copy", a_images)
    compute_fid.main([a, copy, *flags])
    out = capsys.readouterr().out
    fid_same = float(out.split("FID ")[1].split()[0])
    assert abs(fid_same) < 1e-3 and "precision 1.0000  recall 1.0000" in out
    # KID beside FID, by default; 12 a side, under 1,000: its ± over halves (frechet.kid_std_subset)
    assert "KID " in out and "subsets of 12 a side, ± the SD over 100 subsets of 6 a side)" in out

    compute_fid.main([a, b, *flags])
    line, fid_ab = printed(capsys, "FID ")
    assert fid_ab > 1000 * abs(fid_same) and "n = 12 and 10" in line and "input convention ttur" in line
    compute_fid.main([b, "--save-stats", str(tmp_path / "b_stats.npz"), *flags])
    stats = np.load(tmp_path / "b_stats.npz")
    assert int(stats["count"]) == 10 and str(stats["input_convention"]) == "ttur"
    assert len(str(stats["images_sha256"])) == 64 and str(stats["weights_hash"]) == weights.sha256(
        random_inception_weights
    )
    capsys.readouterr()
    compute_fid.main([a, str(tmp_path / "b_stats.npz"), *flags])
    out = capsys.readouterr().out
    assert float(out.split("FID ")[1].split()[0]) == pytest.approx(fid_ab, rel=1e-9)
    assert "need images on both sides" in out
    # pytorch-fid's file: mu and sigma only. The same FID; its count is unknown (not 0), its settings unchecked
    pytorch_fid = tmp_path / "outside" / "b_pytorch_fid.npz"
    pytorch_fid.parent.mkdir()
    np.savez(pytorch_fid, mu=stats["mu"], sigma=stats["sigma"])
    compute_fid.main([a, str(pytorch_fid), *flags])
    out = capsys.readouterr().out
    assert float(out.split("FID ")[1].split()[0]) == pytest.approx(fid_ab, rel=1e-9)
    assert "n = 12 and unknown" in out
    assert "weights, resize and input convention cannot be checked" in out
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["a", "a_copy", "b", "b_stats.npz", "cache", "outside"]

    # the same images with another input convention are other statistics: refused, both settings named
    with pytest.raises(VaevarError, match="input convention ttur; this run uses .* input convention authors"):
        compute_fid.main([a, str(tmp_path / "b_stats.npz"), *flags, "--input-convention", "authors"])

    capsys.readouterr()
    compute_fid.main(["--list-stats"])
    listing = capsys.readouterr().out
    # keyed by content: a and its copy share one entry; b; a under the other convention (features, no FID)
    assert listing.startswith("3 cached statistics")
    assert f"{tmp_path / 'b'}" in listing and "ttur, weights " in listing and "n=10" in listing


def test_images_as_users_have_them(tmp_path, random_inception_weights, capsys):
    """Several sizes in one folder: each image's features are those of its size's own array; NCHW arrays
    are transposed (with a note); grayscale (N, H, W) is one channel repeated."""
    rng = np.random.default_rng(41)
    small = rng.integers(0, 256, (6, 28, 28, 3), dtype=np.uint8)
    large = rng.integers(0, 256, (5, 40, 36, 3), dtype=np.uint8)
    mixed = [small[0], large[0], small[1], *large[1:], *small[2:]]
    got = features.image_features(mixed, random_inception_weights, 4, "mixed", "ttur")
    by_size = {
        shape: features.image_features(group, random_inception_weights, 4, "", "ttur")
        for shape, group in ((small.shape, small), (large.shape, large))
    }
    expected = np.concatenate(
        [
            by_size[small.shape][:1],
            by_size[large.shape][:1],
            by_size[small.shape][1:2],
            by_size[large.shape][1:],
            by_size[small.shape][2:],
        ]
    )
    scale = np.abs(expected).mean()
    # the 299x299 inputs come from the same float32 matrices, summed in another order: rounding only,
    # far below the distance between two images' features
    assert np.abs(got - expected).max() < 1e-3 * scale < np.abs(expected[0] - expected[2]).max()

    nchw = tmp_path / "nchw.npz"
    np.savez(nchw, images=small.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(features.load_sample_array(str(nchw)), small)
    assert "read as NCHW" in capsys.readouterr().err
    gray = tmp_path / "gray.npz"
    np.savez(gray, images=small[..., 0])
    assert features.load_sample_array(str(gray)).shape == (6, 28, 28, 1)


def test_num_samples_is_a_seeded_random_subset(tmp_path):
    images = np.arange(100, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    np.savez(tmp_path / "set.npz", images=images)
    subset = features.load_source(str(tmp_path / "set.npz"), "train", 10)
    np.testing.assert_array_equal(subset, features.load_source(str(tmp_path / "set.npz"), "train", 10))
    assert subset[:, 0, 0, 0].tolist() != list(range(10)) and subset[:, 0, 0, 0].max() > 50
    assert len(features.load_source(str(tmp_path / "set.npz"), "train", None)) == 100


def test_run_mode_refuses_samples_that_would_overwrite_a_kind(tmp_path):
    np.savez(tmp_path / "gen1.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(VaevarError, match="would overwrite the run's 'gen1' entry"):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--run-dir",
                str(tmp_path / "run"),
                "--samples",
                str(tmp_path / "gen1.npz"),
            ]
        )
    assert not (tmp_path / "run" / "fid.json").exists()


def test_a_folder_named_like_a_data_set_is_that_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png_folder(tmp_path / "mnist", np.full((3, 8, 8, 3), 7, np.uint8))
    side = score.read_side("mnist", None)
    assert side.shape == (3, 8, 8, 3) and side.max() == 7  # not the MNIST training split


def test_two_sets_take_quick_and_say_which_run_flags_they_ignore(tmp_path, capsys):
    from vaevar import cli, data

    paths = [str(tmp_path / name) for name in ("a.npz", "b.npz")]
    for path in paths:
        np.savez(path, images=np.zeros((4, 8, 8, 3), np.uint8))

    def settings(*flags):
        args = cli.parse_constants(vars(compute_fid), compute_fid.__doc__, [*paths, *flags], ("paths", ""))
        return compute_fid.check_settings(args)

    assert settings().num_samples is None and "ignores" not in capsys.readouterr().out  # every image
    quick = settings("--quick")
    assert (quick.num_samples, quick.frechet_method) == (data.QUICK_SETTINGS["fid_samples"], "eig")
    assert settings("--quick", "--num-samples", "20").num_samples == 20  # a count given is kept
    capsys.readouterr()
    settings("--samples", "x.npz", "--no-train-reference", "--dataset", "mnist")
    assert "comparing sets ignores --dataset, --samples, --train-reference" in capsys.readouterr().out
    # the run form: --quick's count unless one is given, as before
    run = compute_fid.check_settings(
        cli.parse_constants(
            vars(compute_fid), compute_fid.__doc__, ["--quick", "--run-dir", str(tmp_path)], ("paths", "")
        )
    )
    assert run.num_samples == data.QUICK_SETTINGS["fid_samples"]


def test_fid_with_too_few_samples(tmp_path):
    import compute_fid

    with pytest.raises(VaevarError, match="at least 2"):
        compute_fid.main(["--dataset", "mnist", "--run-dir", str(tmp_path), "--num-samples", "1"])
