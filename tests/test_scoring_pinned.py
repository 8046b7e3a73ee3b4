"""The three ways a set is scored against a reference (Run.score, score.score_set, score.compare) give one FID,
KID and precision / recall / density / coverage, each equal to frechet.py's and diversity.py's functions
applied to the same features. The features come from random Inception weights on CPU, whose float32 sums
vary between machines, so the numbers are pinned to each other and to that computation, not as literals."""

import numpy as np
import pytest

from tests.conftest import digit_images
from vaevar.fid import diversity, frechet, score
from vaevar.fid.weights import sha256
from vaevar.run import Run

COUNT = 24  # a seeded 24 of mnist_npz's test images and 24 samples, every one scored (fewer than 64)
METHOD = "eig"  # seconds where sqrtm takes a minute per distance on 2 cores


@pytest.fixture
def three_ways(tmp_path, monkeypatch, random_inception_weights, mnist_npz):
    """{entry point: its scores} for rendered digits, half inverted, against the run's test reference, and the
    two sides' statistics (set_statistics, the features every entry point scores)."""
    monkeypatch.setenv("VAEVAR_CACHE_DIR", str(tmp_path / "cache"))
    # half of them digits like the reference's, half inverted: the random network's features tell them apart
    half = COUNT // 2
    samples = np.concatenate([digit_images(half, seed=1), 255 - digit_images(half, seed=3)])[..., None]
    samples_path = str(tmp_path / "gen1.npz")
    np.savez(samples_path, images=samples)
    run = Run(str(tmp_path), "mnist", first=None, data_path=mnist_npz)  # scoring needs no model
    with pytest.warns(UserWarning):  # fewer samples than features: a singular covariance
        by_run = run.score(samples, random_inception_weights, COUNT, METHOD)
        weights_hash = sha256(random_inception_weights)
        settings = score.FidSettings(
            reference="mnist",
            reference_split="test",
            data_path=mnist_npz,
            jpeg_round_trip=True,
            frechet_method=METHOD,
            **dict(score.RUN_DEFAULTS, num_samples=COUNT),
        )
        reference = score.reference_statistics(settings, random_inception_weights, weights_hash)
        by_score_set = score.score_set(
            samples_path, reference, settings, random_inception_weights, weights_hash, {}, {}
        )
        ours = score.set_statistics(
            samples, COUNT, settings, random_inception_weights, weights_hash, "samples", "test"
        )
        by_compare = score.compare(ours, reference, METHOD)
    sides = {"reference": reference, "samples": ours}
    return {"Run.score": by_run, "score_set": by_score_set, "compare": by_compare}, sides


def test_the_three_entry_points_give_the_same_scores_as_frechet_and_diversity(three_ways):
    scores, sides = three_ways
    reference, samples = sides["reference"]["features"], sides["samples"]["features"]
    assert reference.shape == samples.shape == (COUNT, 2048)
    mu, sigma = frechet.statistics(samples)
    by_hand = {
        "fid": frechet.frechet_distance(
            sides["reference"]["mu"],
            sides["reference"]["sigma"],
            mu,
            sigma,
            method=METHOD,
            features1=reference,
            features2=samples,
        ),
        **diversity.diversity(reference, samples),  # the radii computed here, not the cached ones
    }
    by_hand["kid"], by_hand["kid_std"] = frechet.kernel_inception_distance(reference, samples)
    print({k: by_hand[k] for k in sorted(by_hand)})  # the numbers, for the record of a change
    assert 0 < by_hand["precision"] < 1 and by_hand["fid"] > 0.1 and by_hand["kid"] > 0
    for name, scored in scores.items():
        assert scored["fid"] == pytest.approx(by_hand["fid"], rel=1e-9), name
        for key in ("precision", "recall", "density", "coverage"):  # counts of points: exact
            assert scored[key] == by_hand[key], (name, key)
        for key in ("kid", "kid_std"):  # the same subsets of the same features, one summation order
            assert scored[key] == by_hand[key], (name, key)
        # 24 a side, under KID's 1,000: the mean over subsets of all of them, the std over halves
        assert (scored["kid_subset"], scored["kid_std_subset"]) == (COUNT, COUNT // 2), name
        assert scored["kid_std"] > 0, name
    assert scores["Run.score"]["n"] == scores["score_set"]["n"] == COUNT
    assert scores["compare"]["n_a"] == scores["compare"]["n_b"] == COUNT
