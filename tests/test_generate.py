import numpy as np
import pytest

import generate
from common import VaevarError


def test_global_renormalization_gives_unit_mean_std():
    z = np.random.default_rng(0).normal(0, 0.6, (5000, 16)) * np.linspace(0.5, 1.5, 16)
    out, scale = generate.renormalize(z, 1.0, "global")
    assert np.mean(out.std(0)) == pytest.approx(1.0, rel=1e-5)
    assert np.ndim(scale) == 0
    # one scalar: the relative spread of dimensions is kept
    np.testing.assert_allclose(out.std(0) / out.std(0)[0], z.std(0) / z.std(0)[0], rtol=1e-5)


def test_per_dimension_renormalization_hits_each_target():
    z = np.random.default_rng(1).normal(0, 0.3, (4000, 8))
    target = np.linspace(0.5, 1.2, 8)
    out, _ = generate.renormalize(z, target, "per_dim")
    np.testing.assert_allclose(out.std(0), target, rtol=1e-5)


def test_measured_target_global():
    z = np.random.default_rng(2).normal(0, 0.5, (3000, 4))
    out, _ = generate.renormalize(z, np.array([0.8, 0.9, 1.0, 1.1]), "global")
    assert np.mean(out.std(0)) == pytest.approx(0.95, rel=1e-5)


def test_unknown_mode():
    with pytest.raises(VaevarError):
        generate.renormalize(np.ones((3, 2)), 1.0, "median")


def test_grid_shapes():
    images = np.zeros((64, 32, 32, 3), np.uint8)
    grid = generate.image_grid(images, 8, 8)
    assert grid.shape == (2 * (8 * 34 + 2), 2 * (8 * 34 + 2), 3)
    pair = generate.side_by_side(images, images, 8, 8)
    assert pair.shape[1] == 2 * grid.shape[1] + 16


def test_latent_statistics_by_hand():
    import train_second_stage

    mu = np.array([[1.0, 0.0], [-1.0, 2.0]], np.float32)
    sigma = np.array([[0.5, 1.0], [0.5, 1.0]], np.float32)
    stats = train_second_stage.latent_statistics(mu, sigma)
    np.testing.assert_allclose(stats["z_std"], [np.sqrt(1 + 0.25), np.sqrt(1 + 1)])
    np.testing.assert_allclose(stats["second_moment"], [1 + 0.25, 2 + 1])
    assert stats["count"] == 2 and stats["mean_z_std"] == pytest.approx(np.mean(stats["z_std"]))


def synthetic_latents(seed=0, n=20000):
    """mu with per-dimension variances 0.25..1, sigma constant per dimension: known moments."""
    rng = np.random.default_rng(seed)
    mu_var = np.linspace(0.25, 1.0, 8)
    sigma = np.tile(np.linspace(0.1, 0.8, 8), (n, 1))
    mu = rng.normal(0, np.sqrt(mu_var), (n, 8))
    return mu, sigma, mu_var


def test_authors_target_adds_sigma_not_sigma_squared():
    mu, sigma, mu_var = synthetic_latents()
    sigma_j = sigma[0]
    authors = generate.latent_target(mu, sigma, "authors")
    law = generate.latent_target(mu, sigma, "variance_law")
    assert authors == pytest.approx(np.sqrt(np.mean(mu_var + sigma_j)), rel=1e-2)
    assert law == pytest.approx(np.sqrt(np.mean(mu_var + sigma_j ** 2)), rel=1e-2)
    assert authors > law  # sigma < 1, so sigma > sigma^2: the quirk targets more variance
    np.testing.assert_allclose(generate.latent_target(mu, sigma, "authors", "per_dim"),
                               np.sqrt(mu_var + sigma_j), rtol=2e-2)
    assert generate.latent_target(mu, sigma, "unit") == 1.0
    with pytest.raises(VaevarError, match="measured"):
        generate.latent_target(mu, sigma, "measured")


def test_gen2_renormalization_hits_the_authors_adjust():
    mu, sigma, _ = synthetic_latents(1)
    adjust = generate.latent_target(mu, sigma, "authors")
    shrunk = np.random.default_rng(2).normal(0, 0.5, (5000, 8))  # a second stage's outputs, too little variance
    out, scale = generate.renormalize(shrunk, adjust, "global")
    assert np.mean(out.std(0)) == pytest.approx(adjust, rel=1e-6)
    assert scale == pytest.approx(adjust / np.mean(shrunk.std(0)))


def test_pixel_renormalization_of_reconstructions():
    rng = np.random.default_rng(3)
    originals = rng.random((4000, 4, 4, 3)) * 0.6 + 0.2
    mean = originals.mean(0)
    reconstructions = mean + (originals - mean) * 0.5  # half the spread, same per-pixel mean
    out, scale = generate.renormalize_pixels(reconstructions, originals)
    assert scale == pytest.approx(2.0, rel=1e-6)
    np.testing.assert_allclose(out, originals, atol=1e-6)  # no clipping needed here
    clipped, _ = generate.renormalize_pixels(0.4 + 0.05 * rng.standard_normal((4000, 4, 4, 3)), originals)
    assert clipped.min() == 0.0 and clipped.max() == 1.0  # a large scale pushes pixels out: clipped to [0, 1]


def test_second_stage_variance_ratio_on_a_shrinking_stage():
    """A 'second stage' whose reconstruction is 0.5 * mu loses 3/4 of the variance: ratio = 0.75 Var / 0.25 Var = 3."""
    class Shrink:
        class encoder:
            @staticmethod
            def predict(x, batch_size=None, verbose=0):
                return x, np.full_like(x, -30.0)  # sigma ~ 0: the code is mu itself

    import training

    original = training.decode
    training.decode = lambda model, z, batch_size=500: 0.5 * np.asarray(z)
    try:
        mu = np.random.default_rng(4).normal(0, 1.3, (20000, 6))
        ratio = generate.second_stage_variance_ratio(Shrink(), mu)
    finally:
        training.decode = original
    assert ratio == pytest.approx(3.0, rel=1e-3)  # float32 codes
