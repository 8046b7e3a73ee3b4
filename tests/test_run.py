"""vaevar/run.py: Run.load, the one loader of a trained run, and what it draws."""

import os
import shutil

import numpy as np
import pytest

from tests.conftest import crafted_second_stage
from vaevar import data, files, layout
from vaevar.errors import VaevarError
from vaevar.run import Run


@pytest.fixture(scope="module")
def two_stages(stage1_only, tmp_path_factory):
    """stage1_only's first stage and a crafted second stage (z_hat = 0.5 u + 0.1) that ran 3 epochs."""
    run_dir = str(tmp_path_factory.mktemp("two_stages"))
    paths = layout.RunPaths(run_dir)
    shutil.copytree(layout.RunPaths(stage1_only).stage1.dir, paths.stage1.dir)
    first = Run.load(run_dir).first
    second = crafted_second_stage(first.latent_dim, 0.5, 0.1)
    files.save_model(second, paths.stage2.model)
    files.save_json(paths.stage2.state, {"stage1_weights": files.weights_digest(first), "epoch": 3})
    return run_dir


def test_a_folder_without_a_first_stage_is_refused(tmp_path):
    with pytest.raises(VaevarError, match="holds no trained first stage: run train_first_stage.py first"):
        Run.load(str(tmp_path))
    with pytest.raises(VaevarError, match="first-stage model not found"):
        Run.load(str(tmp_path), dataset="mnist")


def test_a_run_of_one_stage_has_no_gen2(stage1_only, mnist_npz, capsys):
    run = Run.load(stage1_only, data_path=mnist_npz, evaluation_count=20)
    assert run.second is None and "GEN-2 skipped" in capsys.readouterr().out
    assert run.dataset == "mnist" and run.gate_ratio() is None
    with pytest.raises(VaevarError, match="has no second stage: run train_second_stage.py"):
        run.codes("gen2", 4)
    with pytest.raises(VaevarError, match="no second stage kept after epoch 2 .*kept: none"):
        Run.load(stage1_only, stage2_epoch=2)
    with pytest.raises(VaevarError, match="trained on mnist, not cifar10"):
        Run.load(stage1_only, dataset="cifar10")


def test_codes_of_each_kind_are_seeded_and_their_own(two_stages, mnist_npz):
    run = Run.load(two_stages, data_path=mnist_npz, evaluation_count=20)
    gen1 = run.codes("gen1", 6, seed=3)
    np.testing.assert_array_equal(gen1, run.codes("gen1", 6, seed=3))
    assert not np.array_equal(gen1, run.codes("gen1", 6, seed=4))
    # GEN-2 decodes its own stream's u: the crafted decoder's 0.5 u + 0.1, not GEN-1's codes
    u = np.random.default_rng([3, 3]).standard_normal((6, run.first.latent_dim)).astype(np.float32)
    # the crafted decoder's other weights are exact zeros: 0.5 u is exact, adding the bias rounds once (2^-24
    # relative); the bounds leave ~100 roundings for any summation order of the zero terms
    np.testing.assert_allclose(run.codes("gen2", 6, seed=3), 0.5 * u + 0.1, rtol=1e-5, atol=1e-6)
    # REC: the evaluation images' mu + sigma * eps, eps from the REC stream
    evaluation = run.evaluation()
    eps = np.random.default_rng([3, 1]).standard_normal(evaluation["mu"][:6].shape).astype(np.float32)
    np.testing.assert_array_equal(
        run.codes("rec", 6, seed=3), evaluation["mu"][:6] + evaluation["sigma"][:6] * eps
    )
    with pytest.raises(VaevarError, match="unknown kind 'gen3'"):
        run.codes("gen3", 2)


def test_evaluation_images_are_the_seeded_test_draw_and_reconstruct_decodes_their_codes(
    two_stages, mnist_npz
):
    run = Run.load(two_stages, data_path=mnist_npz, evaluation_count=20)
    images = run.evaluation()["images"]
    np.testing.assert_array_equal(images, data.load_evaluation("mnist", mnist_npz, 20))
    mu, sigma = run.encode(images)
    np.testing.assert_array_equal(run.reconstruct(images, sampled=False), data.to_uint8(run.decode(mu)))
    eps = np.random.default_rng([0, 1]).standard_normal(mu.shape).astype(np.float32)
    np.testing.assert_array_equal(run.reconstruct(images), data.to_uint8(run.decode(mu + sigma * eps)))


def test_the_rules_target_and_gate_are_measured_on_the_evaluation_codes(two_stages, mnist_npz):
    """No latent_stats.json: the authors' target from the evaluation codes. The crafted GEN-2 reconstructs mu as
    z_hat = 0.5 mu + 0.1, so its variance-loss ratio is 0.75 mean Var(mu) / mean((0.5 mu - 0.1)^2)."""
    from vaevar.renormalization import latent_target

    run = Run.load(two_stages, data_path=mnist_npz, evaluation_count=20)
    mu = run.evaluation()["mu"].astype(np.float64)
    np.testing.assert_allclose(run.target(), latent_target(mu, run.evaluation()["sigma"], "authors"))
    by_hand = 0.75 * np.mean(np.var(mu, 0)) / np.mean((0.5 * mu - 0.1) ** 2)
    assert run.gate_ratio() == pytest.approx(by_hand, rel=1e-4)


def test_a_second_stage_of_another_first_stage_is_refused(two_stages, tmp_path):
    copy = str(tmp_path / "run")
    shutil.copytree(two_stages, copy)
    state = layout.RunPaths(copy).stage2.state
    files.save_json(state, dict(files.load_json(state), stage1_weights="0" * 64))
    with pytest.raises(VaevarError, match="trained on another first stage"):
        Run.load(copy)
    assert os.path.exists(layout.RunPaths(copy).stage2.model)  # refused, nothing removed


def test_an_exported_run_loads_with_the_same_weights_and_no_optimizer_state(two_stages, tmp_path, mnist_npz):
    """tools/export_run.py's copy: Run.load opens it with both stages (the second's record of the first's
    digest kept), the same weights, and neither checkpoints, kept copies nor Adam's two moments per weight."""
    from tools import export_run

    out = str(tmp_path / "shared")
    export_run.main([two_stages, "--out", out])
    original = Run.load(two_stages, data_path=mnist_npz)
    shared = Run.load(out, data_path=mnist_npz)
    assert shared.second is not None and shared.dataset == original.dataset
    for stage in ("first", "second"):
        assert files.weights_digest(getattr(shared, stage)) == files.weights_digest(getattr(original, stage))
    names = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    assert not any("checkpoint.keras" in n or "kept" in n for n in names)
    assert "stage1/checkpoint.json" in names and "stage2/checkpoint.json" in names
    trained = layout.RunPaths(two_stages).stage1.model
    adam_bytes = 2 * 4 * sum(int(np.prod(w.shape)) for w in original.first.trainable_weights)
    assert os.path.getsize(trained) - os.path.getsize(os.path.join(out, "stage1", "first_stage.keras")) > (
        0.9 * adam_bytes
    )


SHIPPED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "results",
    "fashion_mnist_first_stage_seeds",
    "run_seed_0",
)


def test_the_shipped_run_opens_with_both_stages_and_decodes_gen2():
    """The committed run (the seeds study's seed 0, weights only): Run.load opens both stages without the data,
    each stage's weights are the ones its config.json names, no checkpoint ships, and GEN-2's codes decode
    to Fashion-MNIST-sized images in [0, 1]."""
    paths = layout.RunPaths(SHIPPED)
    run = Run.load(SHIPPED)
    assert run.dataset == "fashion_mnist" and run.second is not None
    for stage, model in ((paths.stage1, run.first), (paths.stage2, run.second)):
        assert files.weights_digest(model) == files.load_json(stage.config)["weights"]
        assert not os.path.exists(stage.checkpoint)
    images = run.decode(run.codes("gen2", 4))
    assert images.shape == (4, 28, 28, 1) and np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0
