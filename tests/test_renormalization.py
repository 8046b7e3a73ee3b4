"""renormalization.py: the rule, its targets and its gate."""

import numpy as np
import pytest

import generate
from tests.conftest import crafted_second_stage, std
from vaevar import data, files, layout, renormalization, run_folder, training
from vaevar.errors import VaevarError


def test_global_renormalization_gives_unit_mean_std():
    z = np.random.default_rng(0).normal(0, 0.6, (5000, 16)) * np.linspace(0.5, 1.5, 16)
    out, scale = renormalization.renormalize(z, 1.0, "global")
    assert np.mean(std(out)) == pytest.approx(1.0, rel=1e-5)
    assert np.ndim(scale) == 0
    # one scalar: the relative spread of dimensions is kept
    np.testing.assert_allclose(std(out) / std(out)[0], z.std(0) / z.std(0)[0], rtol=1e-5)


def test_per_dimension_renormalization_hits_each_target():
    z = np.random.default_rng(1).normal(0, 0.3, (4000, 8))
    target = np.linspace(0.5, 1.2, 8)
    out, _ = renormalization.renormalize(z, target, "per_dim")
    np.testing.assert_allclose(std(out), target, rtol=1e-5)


def test_measured_target_global():
    z = np.random.default_rng(2).normal(0, 0.5, (3000, 4))
    out, _ = renormalization.renormalize(z, np.array([0.8, 0.9, 1.0, 1.1]), "global")
    assert np.mean(std(out)) == pytest.approx(0.95, rel=1e-5)


def test_unknown_mode():
    with pytest.raises(VaevarError):
        renormalization.renormalize(np.ones((3, 2)), 1.0, "median")


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
    authors = renormalization.latent_target(mu, sigma, "authors")
    law = renormalization.latent_target(mu, sigma, "variance_law")
    assert authors == pytest.approx(np.sqrt(np.mean(mu_var + sigma_j)), rel=1e-2)
    assert law == pytest.approx(np.sqrt(np.mean(mu_var + sigma_j**2)), rel=1e-2)
    assert authors > law  # sigma < 1, so sigma > sigma^2: the quirk targets more variance
    np.testing.assert_allclose(
        renormalization.latent_target(mu, sigma, "authors", "per_dim"), np.sqrt(mu_var + sigma_j), rtol=2e-2
    )
    assert renormalization.latent_target(mu, sigma, "unit") == 1.0
    with pytest.raises(VaevarError, match="measured"):
        renormalization.latent_target(mu, sigma, "measured")


def test_gen2_renormalization_hits_the_authors_adjust():
    mu, sigma, _ = synthetic_latents(1)
    adjust = renormalization.latent_target(mu, sigma, "authors")
    shrunk = np.random.default_rng(2).normal(
        0, 0.5, (5000, 8)
    )  # a second stage's outputs, too little variance
    out, scale = renormalization.renormalize(shrunk, adjust, "global")
    assert np.mean(std(out)) == pytest.approx(adjust, rel=1e-6)
    assert scale == pytest.approx(adjust / np.mean(shrunk.std(0)))


def test_pixel_renormalization_of_reconstructions():
    rng = np.random.default_rng(3)
    originals = rng.random((4000, 4, 4, 3)) * 0.6 + 0.2
    mean = originals.mean(0)
    reconstructions = mean + (originals - mean) * 0.5  # half the spread, same per-pixel mean
    out, scale = renormalization.renormalize_pixels(reconstructions, originals)
    assert scale == pytest.approx(2.0, rel=1e-6)
    np.testing.assert_allclose(out, originals, atol=1e-6)  # no clipping needed here
    clipped, _ = renormalization.renormalize_pixels(
        0.4 + 0.05 * rng.standard_normal((4000, 4, 4, 3)), originals
    )
    assert clipped.min() == 0.0 and clipped.max() == 1.0  # a large scale pushes pixels out: clipped to [0, 1]


def test_second_stage_variance_ratio_on_a_shrinking_stage():
    """A 'second stage' whose reconstruction is 0.5 * mu loses 3/4 of the variance: ratio = 0.75 Var / 0.25 Var = 3."""

    class Shrink:
        class encoder:
            @staticmethod
            def predict(x, batch_size=None, verbose=0):
                return x, np.full_like(x, -30.0)  # sigma ~ 0: the code is mu itself

    from vaevar import training

    original = training.decode
    training.decode = lambda model, z, batch_size=500: 0.5 * np.asarray(z)
    try:
        mu = np.random.default_rng(4).normal(0, 1.3, (20000, 6))
        ratio = renormalization.second_stage_variance_ratio(Shrink(), mu)
    finally:
        training.decode = original
    assert ratio == pytest.approx(
        3.0, rel=1e-3
    )  # 3 Var / E[mu^2]: the codes' sample mean, ~1 / N = 5e-5 per dim


def rule_settings(**overrides):
    return renormalization.RenormalizationSettings(**overrides)  # the authors' rule, but for the overrides


def test_the_rule_gates_gen1_like_gen2_unless_asked_always():
    z = np.random.default_rng(5).normal(0, 1, (300, 8)).astype(np.float32)
    decode = lambda codes: codes  # noqa: E731  the images are the codes themselves here
    for ratio, applied in ((0.2, False), (0.3, True)):
        images, z_used, _, was = renormalization.renormalize_kind(
            "gen1", z, z, None, 0.7, rule_settings(), decode, ratio
        )
        assert was is applied
        np.testing.assert_allclose(z_used, z * 0.7 if applied else z, rtol=1e-6)
    _, z_used, _, was = renormalization.renormalize_kind(
        "gen1", z, z, None, 0.7, rule_settings(gen1_renorm="always"), decode, 0.2
    )
    assert was and np.allclose(z_used, z * 0.7)
    _, z_used, _, was = renormalization.renormalize_kind(
        "gen1", z, z, None, 0.7, rule_settings(), decode, None
    )
    assert was  # no second stage, no gate


def test_gen2_is_rescaled_batch_by_batch_as_the_authors_do():
    rng = np.random.default_rng(6)
    z = (rng.normal(0, 1, (250, 8)) * np.repeat([0.3, 0.6, 0.9], [100, 100, 50])[:, None]).astype(np.float32)
    _, batched, _, _ = renormalization.renormalize_kind(
        "gen2", z, z, None, 1.1, rule_settings(), lambda c: c, 0.5
    )
    for start in (0, 100, 200):  # each batch of 100 (and the last 50) hits the target on its own
        assert np.mean(std(batched[start : start + 100])) == pytest.approx(1.1, rel=1e-5)
    _, whole, _, _ = renormalization.renormalize_kind(
        "gen2", z, z, None, 1.1, rule_settings(gen2_rescale="whole"), lambda c: c, 0.5
    )
    assert np.mean(std(whole)) == pytest.approx(1.1, rel=1e-5)
    assert np.mean(whole[:100].std(0)) < 0.8  # one scale for all keeps the batches' differences


@pytest.mark.parametrize("applies", [True, False])
def test_the_authors_gate_on_a_real_second_stage(stage1_only, mnist_npz, tmp_path, applies):
    """Variance ratio 3 (z_hat = (mu + mean) / 2) is over 0.25: GEN-2 is rescaled to the target std.
    Ratio 0 (z_hat = mu + 0.1, no variance lost): gen2_renorm is the plain GEN-2."""
    import shutil

    run_dir = str(tmp_path / "run")
    paths = layout.RunPaths(run_dir)
    shutil.copytree(layout.RunPaths(stage1_only).stage1.dir, paths.stage1.dir)
    first = run_folder.load_model(paths.stage1.model, "model")
    evaluation = data.load_evaluation("mnist", mnist_npz, 60)
    mu, _ = training.encode(first, evaluation)
    second = (
        crafted_second_stage(first.latent_dim, 0.5, 0.5 * mu.mean(0))
        if applies
        else crafted_second_stage(first.latent_dim, 1.0, 0.1)
    )
    files.save_model(second, paths.stage2.model)
    generate.main(
        ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--num-samples", "60"]
    )
    summary = files.load_json(paths.samples_summary)["kinds"]["gen2"]
    assert summary["variance_loss_ratio"] == pytest.approx(3.0 if applies else 0.0, abs=1e-3)
    assert summary["renormalized"] is applies
    latents = np.load(paths.sample_latents)
    plain, renormed = (np.load(paths.sample(k))["images"] for k in ("gen2", "gen2_renorm"))
    if applies:
        target = files.load_json(paths.samples_summary)["target"][0]
        assert np.mean(latents["gen2_renorm"].std(0)) == pytest.approx(target, rel=1e-5)
        assert np.mean(latents["gen2"].std(0)) == pytest.approx(0.5, rel=0.2)  # N(0, I) halved
        assert not np.array_equal(plain, renormed)
    else:
        np.testing.assert_array_equal(latents["gen2_renorm"], latents["gen2"])
        np.testing.assert_array_equal(plain, renormed)
