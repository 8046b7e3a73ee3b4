import numpy as np
import pytest

from vaevar import variance_measures


def test_mean_decoder_loses_all_variance_and_mse_equals_it():
    x = np.random.default_rng(0).random((200, 5, 5, 1))
    x_hat = np.broadcast_to(x.mean(axis=0), x.shape)
    per_pixel_variance = np.var(x.reshape(200, -1), axis=0).mean()
    assert variance_measures.variance_loss(x, x_hat) == pytest.approx(per_pixel_variance)
    assert variance_measures.mean_squared_error(x, x_hat) == pytest.approx(per_pixel_variance)


def test_total_variance_by_hand_and_uint8_scaling():
    x = np.array([[0, 255], [255, 255]], np.uint8).reshape(2, 2, 1, 1)
    # pixel 0 takes 0 and 1 (variance 0.25), pixel 1 is constant
    assert variance_measures.total_variance(x) == pytest.approx(0.25)


def test_perfect_reconstruction_loses_nothing():
    x = np.random.default_rng(1).random((50, 4, 4, 3))
    assert variance_measures.variance_loss(x, x) == 0 and variance_measures.mean_squared_error(x, x) == 0


def test_half_permutation_mix_mse_equals_variance_loss_in_expectation():
    # The paper's example: x_hat = (x + x_p) / 2 for a permutation p.
    x = np.random.default_rng(2).normal(size=(20000, 3))
    x_hat = (x + x[np.random.default_rng(3).permutation(len(x))]) / 2
    assert variance_measures.mean_squared_error(x, x_hat) == pytest.approx(
        variance_measures.variance_loss(x, x_hat), rel=0.03
    )


def test_pca_identity_exact():
    x = np.random.default_rng(4).random((300, 6, 6, 1))
    rows = variance_measures.pca_identity(x, [1, 3, 10, 35])
    for row in rows:
        assert row["mse"] == pytest.approx(row["variance_loss"], rel=1e-10, abs=1e-14)
    assert rows[0]["mse"] > rows[-1]["mse"] > 0
    assert variance_measures.pca_identity(x, [36])[0]["mse"] == pytest.approx(0, abs=1e-20)


def test_smoothing_example_keeps_mean_and_loses_variance():
    example = variance_measures.smoothing_example()
    assert example["smooth"].mean() == pytest.approx(example["signal"].mean())
    assert example["variance_loss"] > 0 and example["mse"] > 0
    assert example["mse"] == pytest.approx(np.mean((example["signal"] - example["smooth"]) ** 2))


def test_variance_law_and_inactive_count():
    rng = np.random.default_rng(5)
    mu = np.concatenate([rng.normal(0, 0.8, (5000, 3)), rng.normal(0, 0.01, (5000, 2))], axis=1)
    sigma = np.concatenate([np.full((5000, 3), 0.6), np.full((5000, 2), 1.0)], axis=1)
    law = variance_measures.variance_law(mu, sigma)
    np.testing.assert_allclose(law["second_moment"][:3], 0.64 + 0.36, rtol=0.05)
    assert law["inactive_count"] == 2 and list(law["inactive"]) == [False] * 3 + [True] * 2
    assert law["inactive_rule"] == "mean sigma > 0.8 (the authors' rule)"
    assert law["second_moment_sum"] == pytest.approx(5.0, rel=0.05)
    assert law["max_abs_mu_mean"] < 0.05 and law["mu_mean_square_sum"] < 5 * 0.05**2
    shifted = variance_measures.variance_law(mu + np.array([1.0, 0, 0, 2.0, 0]), sigma)
    assert shifted["mu_mean_square_sum"] == pytest.approx(5.0, rel=0.02)


def test_inactive_variables_by_the_authors_rule_mean_sigma_above_0_8_whatever_var_mu():
    """asperti/BalancingVAE counts a latent variable inactive when its mean sigma is above 0.8, with no condition
    on Var(mu). Mean sigma 0.85 is inactive (the old rule, 0.9, said active), 0.75 is active; a dimension whose mu
    varies (Var(mu) 0.25) but whose mean sigma is 0.85 is inactive too (the old rule required Var(mu) < 0.01)."""
    rng = np.random.default_rng(6)
    n = 4000
    mu = np.stack(
        [rng.normal(0, 0.01, n), rng.normal(0, 0.01, n), rng.normal(0, 0.5, n), rng.normal(0, 0.01, n)], 1
    )
    sigma = np.stack([np.full(n, 0.85), np.full(n, 0.75), np.full(n, 0.85), rng.uniform(0.78, 0.84, n)], 1)
    law = variance_measures.variance_law(mu, sigma)
    assert variance_measures.INACTIVE_SIGMA == 0.8
    assert list(law["inactive"]) == [True, False, True, True] and law["inactive_count"] == 3


def test_batch_norm_lag_note_only_above_its_threshold():
    assert variance_measures.batch_norm_lag_note(0.012, 0.010) == ""  # 1.2x: a 7-epoch run's lag, not flagged
    note = variance_measures.batch_norm_lag_note(0.052, 0.019)
    assert "2.7x" in note and "--recalibrate-bn" in note


def test_batch_statistics_reconstructions_see_through_lagging_moving_statistics():
    """decode_posterior_means with the moving statistics is the inference training.decode does; with batch
    statistics it ignores the moving ones. Moving statistics made to lag (variances x 50) change the first
    and leave the second."""
    import keras

    from models.first_stage import build_first_stage
    from tests.conftest import digit_images, rounding_bound
    from vaevar import training

    keras.utils.set_random_seed(0)
    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
    images = digit_images(200)[..., None]
    moving = training.decode_posterior_means(model, images, batch_statistics=False)
    # eager calls against predict's compiled ones: equal up to rounding, bounded by the model's own rounding
    # measured here (conftest.rounding_bound; the nudged copies' moving statistics are restored after)
    bound = rounding_bound(
        model, lambda m: training.decode_posterior_means(m, images, batch_statistics=False), moving
    )
    assert 0 < bound < 1e-3  # rounding, far below the lag's 1e-2 asserted below
    mu, _ = training.encode(model, images)
    np.testing.assert_allclose(moving, training.decode(model, mu), rtol=0, atol=bound)
    batch = training.decode_posterior_means(model, images, batch_statistics=True)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(layer.moving_variance * 50.0)
    lagging = training.decode_posterior_means(model, images, batch_statistics=False)
    assert np.abs(lagging - moving).max() > 1e-2
    np.testing.assert_allclose(
        training.decode_posterior_means(model, images, batch_statistics=True), batch, rtol=0, atol=bound
    )


def test_latent_frechet_distance_is_zero_for_the_same_gaussian_and_matches_the_closed_form():
    """Codes from the reference's own Gaussian: ~0, up to the sampling error of two fitted 4-dim Gaussians
    (~ d (d + 3) / (2 n) = 7e-4 at n = 20,000). N(0, I) against N(m, s^2 I): |m|^2 + d (1 - s)^2."""
    rng = np.random.default_rng(11)
    reference = rng.standard_normal((20000, 4))
    shifted = 0.6 * rng.standard_normal((20000, 4)) + np.array([1.0, 0, 0, 0.5])
    distances = variance_measures.latent_frechet_distances(
        reference, {"same": rng.standard_normal((20000, 4)), "shrunk and shifted": shifted}
    )
    assert abs(distances["same"]) < 5e-3
    assert distances["shrunk and shifted"] == pytest.approx(1.25 + 4 * 0.4**2, rel=0.02)


def test_latent_statistics_by_hand():
    mu = np.array([[1.0, 0.0], [-1.0, 2.0]], np.float32)
    sigma = np.array([[0.5, 1.0], [0.5, 1.0]], np.float32)
    stats = variance_measures.latent_statistics(mu, sigma)
    np.testing.assert_allclose(stats["z_std"], [np.sqrt(1 + 0.25), np.sqrt(1 + 1)])
    np.testing.assert_allclose(stats["second_moment"], [1 + 0.25, 2 + 1])
    assert stats["count"] == 2 and stats["mean_z_std"] == pytest.approx(np.mean(stats["z_std"]))
