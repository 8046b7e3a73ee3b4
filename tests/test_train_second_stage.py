"""train_second_stage.py: the latent statistics it writes (the variance law's inputs)."""

import numpy as np
import pytest


def test_latent_statistics_by_hand():
    import train_second_stage

    mu = np.array([[1.0, 0.0], [-1.0, 2.0]], np.float32)
    sigma = np.array([[0.5, 1.0], [0.5, 1.0]], np.float32)
    stats = train_second_stage.latent_statistics(mu, sigma)
    np.testing.assert_allclose(stats["z_std"], [np.sqrt(1 + 0.25), np.sqrt(1 + 1)])
    np.testing.assert_allclose(stats["second_moment"], [1 + 0.25, 2 + 1])
    assert stats["count"] == 2 and stats["mean_z_std"] == pytest.approx(np.mean(stats["z_std"]))
