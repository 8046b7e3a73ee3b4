"""sweep_latent_scale.py: each kind's codes times s, scored; its s = 1 and rule points are generate.py's
images."""

import json
import os
import shutil

import numpy as np
import pytest

import generate
import sweep_latent_scale
from tests.conftest import crafted_second_stage, digit_images
from vaevar import files, layout
from vaevar.errors import VaevarError
from vaevar.fid.features import check_images, content_digest
from vaevar.run import Run


@pytest.fixture(scope="module")
def swept(stage1_only, tmp_path_factory, random_inception_weights):
    """A first stage, a crafted second stage (z_hat = 0.7 u; its gate open: variance lost), 128 test images;
    generate.py's samples and a sweep over 1.2, 0.8, 1.0 (not sorted) of 64 images per point."""
    root = tmp_path_factory.mktemp("sweep")
    data_path = str(root / "mnist.npz")
    images = digit_images(300)
    np.savez(
        data_path, x_train=images[:172], y_train=np.zeros(172), x_test=images[172:], y_test=np.zeros(128)
    )
    run_dir = str(root / "run")
    paths = layout.RunPaths(run_dir)
    shutil.copytree(layout.RunPaths(stage1_only).stage1.dir, paths.stage1.dir)
    first = Run.load(run_dir).first
    files.save_model(crafted_second_stage(first.latent_dim, 0.7, 0.0), paths.stage2.model)
    flags = ["--dataset", "mnist", "--data-path", data_path, "--run-dir", run_dir, "--num-samples", "64"]
    generate.main(flags)
    sweep_latent_scale.main(
        flags + ["--scales", "1.2,0.8,1.0", "--inception-weights", random_inception_weights]
    )
    return run_dir, flags


def stored_digest(path):
    with np.load(path) as stored:
        return content_digest(check_images(stored["images"]))


def test_the_points_follow_the_grid_and_s1_and_the_rule_are_generate_pys_images(swept):
    run_dir, _ = swept
    paths = layout.RunPaths(run_dir)
    result = json.load(open(paths.sweep_file("sweep.json")))
    assert result["scales"] == [1.2, 0.8, 1.0]
    assert set(result["kinds"]) == set(layout.KINDS)
    for kind, entry in result["kinds"].items():
        points = entry["points"]
        assert [p["scale"] for p in points] == [1.2, 0.8, 1.0]  # each point is its own scale's
        for p in points:
            assert p["latent_std"] == pytest.approx(p["scale"] * entry["codes_mean_std"], rel=1e-6)
            assert p["n"] == 64 and {"fid", "kid", "kid_std", "precision", "recall", "latent_fd"} <= set(p)
        assert points[2]["images_sha256"] == stored_digest(paths.sample(kind)), kind
        assert entry["rule"]["images_sha256"] == stored_digest(paths.sample(f"{kind}_renorm")), kind
        assert len({p["images_sha256"] for p in points}) == 3  # scaling changes the images
        best = min(points, key=lambda p: p["fid"])["scale"]
        assert entry["best_scale"]["fid"] == best
    # GEN-2's codes are 0.7 u, the test codes' std another: the matched scale brings one to the other
    gen2 = result["kinds"]["gen2"]
    assert gen2["matched_scale"] * gen2["codes_mean_std"] == pytest.approx(result["test_codes_mean_std"])
    assert gen2["matched"]["latent_std"] == pytest.approx(result["test_codes_mean_std"], rel=1e-6)
    assert {"fid", "kid", "latent_fd"} <= set(gen2["matched"])
    assert gen2["rule"]["applied"] and gen2["rule"]["scale"] is not None
    assert result["kinds"]["rec"]["rule"]["scale"] is None  # the authors' REC rule is per pixel
    assert os.path.getsize(paths.sweep_file("sweep.png")) > 0
    table = open(paths.sweep_file("sweep.md")).read()
    assert "## gen2" in table and "| rule |" in table and "| matched |" in table


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--scales", ""], "--scales is empty"),
        (["--scales", "0.8,-1"], "every scale must be > 0"),
        (["--scales", "0.8,0"], "every scale must be > 0"),
        (["--scales", "1,1"], "a scale is given twice"),
        (["--scales", "a,b"], "give comma-separated numbers"),
        (["--kinds", "gen3"], "--kinds gen3: use some of rec, gen1, gen2"),
    ],
)
def test_bad_input_is_one_line(swept, extra, message):
    _, flags = swept
    with pytest.raises(VaevarError, match=message):
        sweep_latent_scale.main(flags + extra)


def test_gen2_without_a_second_stage_is_refused(stage1_only, mnist_npz):
    with pytest.raises(VaevarError, match="has no second stage: train it, or pass --kinds rec,gen1"):
        sweep_latent_scale.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", stage1_only])
