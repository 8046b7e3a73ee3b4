"""compute_fid.py with fid/score.py, fid/features.py and fid/table.py: scoring sets, caches, the table."""

import json
import os

import numpy as np
import pytest

import compute_fid
from common import VaevarError
from fid import features, frechet, score, table, weights


def test_compute_fid_script_identical_sets_and_cache(tmp_path, random_inception_weights):
    images = np.random.default_rng(7).integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
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
        "40",
        "--inception-weights",
        random_inception_weights,
        "--kid",
        "--frechet-method",
        "eig",
    ]
    with pytest.warns(UserWarning):
        compute_fid.main(argv)
    result = json.load(open(tmp_path / "fid.json"))["ref"]
    assert abs(result["fid"]) < 1e-3
    assert result["n"] == 40 and result["weights_hash"] == weights.sha256(random_inception_weights)
    assert {"backend", "device", "seconds", "kid"} <= set(result)
    # the same images: every point lies in the other set's balls (its own), each set covers the other
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0 and result["density"] >= 1.0
    cached = [p for p in os.listdir(tmp_path) if p.startswith("fid_reference_")]
    assert len(cached) == 1


def test_whole_set_fid_next_to_the_authors_dropped_remainder(tmp_path, random_inception_weights):
    """20 images per side: theirs scores 16 (whole batches of 16), fid_whole_set all 20, from one pass."""
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    samples = (reference // 2 + rng.integers(0, 128, reference.shape)).astype(np.uint8)
    for name, images in (("ref", reference), ("gen1", samples)):
        np.savez(tmp_path / f"{name}.npz", images=images)
    with pytest.warns(UserWarning):
        compute_fid.main(
            [
                "--dataset",
                "mnist",
                "--run-dir",
                str(tmp_path),
                "--samples",
                str(tmp_path / "gen1.npz"),
                "--reference",
                str(tmp_path / "ref.npz"),
                "--num-samples",
                "20",
                "--drop-remainder",
                "16",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
        pool3 = [
            features.extract_features([images], images.shape[1:], random_inception_weights, 20)
            for images in (reference, samples)
        ]
        kept = frechet.scored_subset(20, 16)  # 4 seeded random images dropped, not the last 4
        authors = frechet.frechet_distance(
            *frechet.statistics(pool3[0][kept]), *frechet.statistics(pool3[1][kept]), method="eig"
        )
        whole = frechet.frechet_distance(
            *frechet.statistics(pool3[0]), *frechet.statistics(pool3[1]), method="eig"
        )
    entry = json.load(open(tmp_path / "fid.json"))["gen1"]
    assert (entry["n"], entry["n_whole_set"], entry["reference_n"], entry["reference_n_whole_set"]) == (
        16,
        20,
        16,
        20,
    )
    assert entry["fid"] == pytest.approx(authors, rel=1e-6) and entry["fid_whole_set"] == pytest.approx(
        whole, rel=1e-6
    )
    assert abs(authors - whole) > 1e-5 * authors  # two computations, not one number twice
    table = open(tmp_path / "fid_table.md").read()
    assert f"| FID, whole sets (n = 20) | - | {whole:.2f} | - |" in table


def test_identical_sample_files_are_scored_once(tmp_path, random_inception_weights, capsys, monkeypatch):
    """gen2_renorm equals gen2 when the authors' rule skips renormalization: one feature pass for both."""
    images = np.random.default_rng(11).integers(0, 256, (30, 28, 28, 1), dtype=np.uint8)
    for name in ("gen2", "gen2_renorm"):
        np.savez(tmp_path / f"{name}.npz", images=images)
    np.savez(tmp_path / "other.npz", images=images[::-1].copy() // 2)
    passes = []
    original = features.extract_features
    monkeypatch.setattr(score, "extract_features", lambda *a, **k: passes.append(a[4]) or original(*a, **k))
    samples = ",".join(str(tmp_path / f"{n}.npz") for n in ("gen2", "gen2_renorm", "other"))
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
                "30",
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
    np.savez(tmp_path / "gen1_renorm.npz", images=images)
    compute_fid.main(
        [
            "--dataset",
            "mnist",
            "--run-dir",
            str(tmp_path),
            "--samples",
            str(tmp_path / "gen1_renorm.npz"),
            "--reference",
            str(tmp_path / "other.npz"),
            "--num-samples",
            "30",
            "--inception-weights",
            random_inception_weights,
            "--frechet-method",
            "eig",
        ]
    )
    reused = json.load(open(tmp_path / "fid.json"))["gen1_renorm"]
    assert passes == ["reference", "gen2", "other"]
    assert reused["fid"] == result["gen2"]["fid"] and reused["reused_from"] == str(tmp_path / "gen2.npz")
    assert reused["samples"] == str(tmp_path / "gen1_renorm.npz")


def test_rerun_skips_sets_already_scored_and_rescores_changed_ones(
    tmp_path, random_inception_weights, monkeypatch
):
    """An interrupted FID step resumes: a set fid.json holds for the same images is not scored again."""
    rng = np.random.default_rng(5)
    for name in ("rec", "gen1"):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
    passes = []
    original = features.extract_features
    monkeypatch.setattr(score, "extract_features", lambda *a, **k: passes.append(a[4]) or original(*a, **k))
    argv = [
        "--dataset",
        "mnist",
        "--run-dir",
        str(tmp_path),
        "--reference",
        str(tmp_path / "rec.npz"),
        "--samples",
        f"{tmp_path / 'rec.npz'},{tmp_path / 'gen1.npz'}",
        "--num-samples",
        "30",
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

    np.savez(tmp_path / "gen1.npz", images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
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


def test_reference_cache_follows_the_reference_images_not_the_file_name(tmp_path, random_inception_weights):
    """Replace the reference file's images and rescore: the cached statistics of the old images are not used."""
    rng = np.random.default_rng(21)
    samples = tmp_path / "gen1.npz"
    reference = tmp_path / "ref.npz"
    np.savez(samples, images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
    np.savez(reference, images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))

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
                    "30",
                    "--frechet-method",
                    "eig",
                    "--inception-weights",
                    random_inception_weights,
                    *extra,
                ]
            )
        return json.load(open(os.path.join(run_dir, "fid.json")))["gen1"]["fid"]

    before = fid(tmp_path / "run")
    np.savez(reference, images=rng.integers(0, 128, (30, 28, 28, 1), dtype=np.uint8))  # same name, new images
    after = fid(tmp_path / "run", "--rescore")
    assert after == pytest.approx(fid(tmp_path / "fresh"), rel=1e-9) and abs(after - before) > 1e-3
    assert len([f for f in os.listdir(tmp_path / "run") if f.startswith("fid_reference_")]) == 2


def test_the_images_dropped_to_whole_batches_are_a_seeded_random_few():
    kept = frechet.scored_subset(10000, 9984)
    dropped = np.setdiff1d(np.arange(10000), kept)
    assert len(kept) == 9984 and len(dropped) == 16 and dropped.max() - dropped.min() > 5000
    np.testing.assert_array_equal(kept, frechet.scored_subset(10000, 9984))
    np.testing.assert_array_equal(frechet.scored_subset(70, 70), np.arange(70))


def test_both_references_in_one_run(tmp_path, mnist_npz, random_inception_weights):
    """Against the test split (the authors' 2020-05 code) and random training images (their 2020-02 code)."""
    import data

    rng = np.random.default_rng(30)
    samples = tmp_path / "gen1.npz"
    np.savez(samples, images=rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8))
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
                "30",
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
                [data.load_evaluation("mnist", mnist_npz, 30, split)],
                (28, 28, 1),
                random_inception_weights,
                30,
            )
            for split in ("test", "train")
        }
        ours = features.extract_features(
            [np.load(samples)["images"]], (28, 28, 1), random_inception_weights, 30
        )
    for split, key in (("test", "fid"), ("train", "fid_train_reference")):
        expected = frechet.frechet_distance(
            *frechet.statistics(pool3[split]), *frechet.statistics(ours), method="eig"
        )
        assert entry[key] == pytest.approx(expected, rel=1e-6)
    assert abs(entry["fid"] - entry["fid_train_reference"]) > 1e-3
    assert "| FID against training images | - |" in open(tmp_path / "fid_table.md").read()
