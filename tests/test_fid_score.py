"""vaevar/fid/score.py: statistics files, their settings, the two FIDs of a set, and what is scored once."""

import numpy as np
import pytest

from vaevar.errors import VaevarError
from vaevar.fid import score
from vaevar.fid.frechet import frechet_distance
from vaevar.fid.network import FEATURES


def gaussian_statistics(rng, dim, shift=0.0, count=100):
    features = rng.normal(shift, 1.0, (count, dim))
    return {"mu": features.mean(0), "sigma": np.cov(features, rowvar=False), "count": count}


def test_a_statistics_file_round_trip_and_what_is_not_one(tmp_path):
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=FEATURES), np.eye(FEATURES)
    stats = {
        "mu_whole_set": mu,
        "sigma_whole_set": sigma,
        "count_whole_set": 12,
        "weights_hash": "abc",
        "input_convention": "authors",
        "images_sha256": "def",
        "source": "set",
    }
    path = str(tmp_path / "stats.npz")
    score.save_statistics(path, stats)
    assert score.is_statistics_file(path)
    read = score.read_statistics(path)
    np.testing.assert_array_equal(read["mu"], mu)
    np.testing.assert_array_equal(read["sigma"], sigma)
    assert int(read["count"]) == 12 and str(read["weights_hash"]) == "abc"
    images = str(tmp_path / "images.npz")
    np.savez(images, images=np.zeros((2, 4, 4, 3), np.uint8), mu=mu, sigma=sigma)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not a zip")
    assert not score.is_statistics_file(images) and not score.is_statistics_file(str(corrupt))
    with pytest.raises(VaevarError, match="give a file name ending in .npz"):
        score.check_statistics_output(str(tmp_path / "stats.txt"))
    with pytest.raises(VaevarError, match="exists and holds no statistics"):
        score.check_statistics_output(images)
    small = str(tmp_path / "small.npz")
    np.savez(small, mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(VaevarError, match=r"are not pool_3 statistics \(2048 and 2048x2048\)"):
        score.read_statistics(small)


def test_statistics_of_other_weights_or_convention_are_refused(capsys):
    ours = {"weights_hash": "a" * 64, "input_convention": "authors"}
    score.check_statistics_settings(ours, "s.npz", "a" * 64, "authors")
    with pytest.raises(
        VaevarError, match="input convention pytorch_fid; this run uses .* input convention authors"
    ):
        score.check_statistics_settings(
            dict(ours, input_convention="pytorch_fid"), "s.npz", "a" * 64, "authors"
        )
    with pytest.raises(VaevarError, match="weights bbbbbbbbbbbb"):
        score.check_statistics_settings(ours, "s.npz", "b" * 64, "authors")
    score.check_statistics_settings({}, "theirs.npz", "a" * 64, "authors")  # pytorch-fid's: said, not refused
    assert "records no feature settings" in capsys.readouterr().out


def test_the_scored_fid_and_the_whole_sets_fid():
    rng = np.random.default_rng(1)
    reference = gaussian_statistics(rng, 4)
    reference.update(
        mu_whole_set=reference["mu"] + 0.5, sigma_whole_set=reference["sigma"], count_whole_set=100
    )
    scored = gaussian_statistics(rng, 4, shift=0.3)
    scored_pair = (scored["mu"], scored["sigma"])
    whole = (scored["mu"] - 0.2, scored["sigma"] * 1.1)
    # nothing dropped on either side: one number twice
    fid, fid_whole = score.distances(reference, scored_pair, whole, 100, 100, "sqrtm")
    assert (
        fid == fid_whole == pytest.approx(frechet_distance(reference["mu"], reference["sigma"], *scored_pair))
    )
    # a remainder dropped: the whole sets are scored against the reference's whole set
    fid, fid_whole = score.distances(reference, scored_pair, whole, 64, 100, "sqrtm")
    assert fid_whole == pytest.approx(frechet_distance(reference["mu"] + 0.5, reference["sigma"], *whole))
    assert fid_whole != pytest.approx(fid)


def test_an_entry_is_reused_only_when_complete_and_of_the_same_images_and_settings():
    identity = {"samples_sha256": "x", "reference_sha256": "r", "n": 64}
    complete = dict(identity, fid=1.0, precision=0.5, samples="gen1.npz")
    settings = score.FidSettings("mnist", 64, "test", None, True, 64, "authors", kid=False)
    assert score.same_images_scored({"gen1": complete}, identity, settings) is complete
    assert score.same_images_scored({"gen1": complete}, dict(identity, n=128), settings) is None
    assert (
        score.same_images_scored({"gen1": dict(identity, fid=1.0)}, identity, settings) is None
    )  # no precision
    with_kid = score.FidSettings("mnist", 64, "test", None, True, 64, "authors")  # KID by default
    assert score.same_images_scored({"gen1": complete}, identity, with_kid) is None
    assert score.same_images_scored({"gen1": dict(complete, kid=0.1)}, identity, with_kid) is not None


def test_compare_two_statistics_files_gives_the_fid_and_the_counts():
    rng = np.random.default_rng(2)
    a, b = gaussian_statistics(rng, 4), gaussian_statistics(rng, 4, shift=1.0, count=50)
    result = score.compare(a, b, "sqrtm")
    assert result["fid"] == pytest.approx(frechet_distance(a["mu"], a["sigma"], b["mu"], b["sigma"]))
    assert (result["n_a"], result["n_b"]) == (100, 50)
    assert score.compare(a, a, "sqrtm")["fid"] == pytest.approx(0.0, abs=1e-8)
    assert "precision" not in result  # statistics alone: no features for the manifold measures
