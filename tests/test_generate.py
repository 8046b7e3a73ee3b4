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
