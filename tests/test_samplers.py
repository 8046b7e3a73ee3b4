"""samplers.py: the ex-post samplers."""

import numpy as np
import pytest

from tests.conftest import std
from vaevar import samplers
from vaevar.errors import VaevarError


def test_gauss_sampler_reproduces_the_codes_mean_and_covariance():
    rng = np.random.default_rng(7)
    mixing = rng.normal(size=(4, 4))
    codes = rng.normal(size=(20000, 4)) @ mixing + np.array([1.0, -2.0, 0.5, 3.0])
    drawn = samplers.sampler_codes("gauss", 50000, seed=1, train_mu=codes)
    np.testing.assert_allclose(drawn.mean(0), codes.mean(0), atol=0.05)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), np.cov(codes, rowvar=False), atol=0.1, rtol=0.05)
    np.testing.assert_array_equal(drawn, samplers.sampler_codes("gauss", 50000, seed=1, train_mu=codes))
    assert not np.array_equal(drawn, samplers.sampler_codes("gauss", 50000, seed=2, train_mu=codes))


def test_gmm10_sampler_recovers_well_separated_components():
    rng = np.random.default_rng(8)
    centres = np.stack([np.eye(3)[i % 3] * (12.0 * (1 + i // 3)) * (-1) ** i for i in range(10)])
    codes = np.concatenate([centre + rng.normal(0, 0.5, (400, 3)) for centre in centres])
    mixture = samplers.fit_mixture(codes, seed=0)
    for centre in centres:  # every true centre has a fitted component next to it
        assert np.min(np.linalg.norm(mixture.means_ - centre, axis=1)) < 0.2
    np.testing.assert_allclose(mixture.weights_, 0.1, atol=0.01)
    drawn = samplers.sampler_codes("gmm10", 3000, seed=3, train_mu=codes)
    nearest = np.argmin(np.linalg.norm(drawn[:, None, :] - centres[None], axis=2), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=10) / 3000, 0.1, atol=0.03)
    np.testing.assert_array_equal(drawn, samplers.sampler_codes("gmm10", 3000, seed=3, train_mu=codes))


def test_samplers_fitted_on_too_few_codes_say_so():
    codes = np.random.default_rng(9).normal(size=(50, 8))
    with pytest.raises(VaevarError, match="needs more than 8 codes"):
        samplers.sampler_codes("gauss", 10, 0, train_mu=codes[:8])
    with pytest.raises(VaevarError, match="at least 90 codes"):
        samplers.sampler_codes("gmm10", 10, 0, train_mu=codes)
    with pytest.raises(VaevarError, match="needs a second stage"):
        samplers.sampler_codes("gen2_perdim", 10, 0, train_mu=codes)
    with pytest.raises(VaevarError, match="unknown sampler"):
        samplers.sampler_codes("vamp", 10, 0, train_mu=codes)


def test_gen2_perdim_rescales_each_dimension_to_the_encoded_codes_std():
    codes = np.random.default_rng(10).normal(0, [0.5, 1.0, 2.0], (5000, 3))
    drawn = samplers.sampler_codes(
        "gen2_perdim", 5000, 0, train_z_std=[1.0, 0.8, 1.2], second_stage_codes=codes
    )
    np.testing.assert_allclose(std(drawn), [1.0, 0.8, 1.2], rtol=1e-5)
