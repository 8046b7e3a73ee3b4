"""End-to-end: every script on a few hundred synthetic MNIST-format images."""

import json
import os

import numpy as np
import pytest

import common
from common import VaevarError
import generate
import reproduce
import train_first_stage

EXPECTED_FILES = [
    "stage1/first_stage.keras", "stage1/log.csv", "stage1/checkpoint.keras", "stage1/config.json",
    "stage2/second_stage.keras", "stage2/latents.npz", "stage2/latent_stats.json", "stage2/log.csv",
    "samples/summary.json", "samples/latents.npz",
    "analysis/variance_loss.json", "analysis/report.md", "analysis/mse_vs_variance_loss.png",
    "analysis/pca_identity.png", "analysis/variance_law.png", "analysis/pixel_variance.png",
    "fid.json", "fid_table.md",
]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, mnist_npz, random_inception_weights):
    run_dir = str(tmp_path_factory.mktemp("run"))
    reproduce.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--quick",
                    "--inception-weights", random_inception_weights, "--verbose", "0", "--num-samples", "200"])
    return run_dir


def test_every_output_is_written(pipeline_run):
    kinds = common.SAMPLE_SETS
    expected = EXPECTED_FILES + [f"samples/{k}.npz" for k in kinds] + [f"samples/{k}.png" for k in kinds]
    expected += [f"samples/{k}_side_by_side.png" for k in generate.KINDS]
    missing = [f for f in expected if not os.path.exists(os.path.join(pipeline_run, f))]
    assert not missing
    leftovers = [f for _, _, files in os.walk(pipeline_run) for f in files if ".tmp" in f]
    assert not leftovers  # atomic writes leave no temporary files


def test_outputs_have_the_right_content(pipeline_run):
    with np.load(os.path.join(pipeline_run, "samples", "gen2_renorm.npz")) as stored:
        images = stored["images"]
    assert images.dtype == np.float16 and images.shape == (200, 28, 28, 1)  # unrounded, as the authors score
    assert 0 <= images.min() and images.max() <= 1
    with np.load(os.path.join(pipeline_run, "samples", "rec.npz")) as stored:
        assert stored["images"].shape == (60, 28, 28, 1)  # all 60 test images
    summary = json.load(open(os.path.join(pipeline_run, "samples", "summary.json")))
    gen2, (adjust,) = summary["kinds"]["gen2"], summary["target"]
    assert summary["renorm_target"] == "authors" and 0 < adjust
    expected = adjust if gen2["renormalized"] else gen2["mean_latent_std"]  # the 0.25 variance-loss condition
    assert gen2["mean_latent_std_renorm"] == pytest.approx(expected, rel=1e-4)
    assert (gen2["variance_loss_ratio"] > 0.25) == gen2["renormalized"]
    assert summary["kinds"]["gen1"]["mean_latent_std_renorm"] == pytest.approx(adjust, rel=0.05)  # N(0, I) * adjust
    fid = json.load(open(os.path.join(pipeline_run, "fid.json")))
    assert set(fid) == {"rec", "rec_renorm", "gen1", "gen1_renorm", "gen2", "gen2_renorm"}
    assert all(np.isfinite(v["fid"]) and v["fid"] >= -1e-6 for v in fid.values())
    log = open(os.path.join(pipeline_run, "stage1", "log.csv")).read().splitlines()
    assert log[0].startswith("epoch,loss,mse,gamma,kl") and len(log) == 11  # 10 quick epochs
    gammas = [float(row.split(",")[3]) for row in log[1:]]
    assert gammas[1] <= gammas[0] <= 1.0


def test_same_seed_same_samples(pipeline_run, mnist_npz, tmp_path):
    import shutil

    first = np.load(os.path.join(pipeline_run, "samples", "gen2_renorm.npz"))["images"]
    copy = str(tmp_path / "copy")
    shutil.copytree(os.path.join(pipeline_run, "stage1"), os.path.join(copy, "stage1"))
    shutil.copytree(os.path.join(pipeline_run, "stage2"), os.path.join(copy, "stage2"))
    generate.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", copy, "--num-samples", "200"])
    np.testing.assert_array_equal(np.load(os.path.join(copy, "samples", "gen2_renorm.npz"))["images"], first)
    generate.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", copy, "--num-samples", "200",
                   "--sample-dtype", "uint8"])
    rounded = np.load(os.path.join(copy, "samples", "gen2_renorm.npz"))["images"]
    assert rounded.dtype == np.uint8  # the same images, rounded
    assert np.abs(rounded.astype(np.int16) - np.rint(first.astype(np.float64) * 255)).max() <= 1
    with pytest.raises(VaevarError, match="sample-dtype"):
        generate.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", copy, "--sample-dtype", "int8"])
    generate.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", copy, "--num-samples", "200",
                   "--seed", "1"])
    assert not np.array_equal(np.load(os.path.join(copy, "samples", "gen1.npz"))["images"],
                              np.load(os.path.join(pipeline_run, "samples", "gen1.npz"))["images"])


def test_rerun_of_a_finished_training_resumes_not_restarts(pipeline_run, mnist_npz, capsys):
    train_first_stage.main(["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", pipeline_run,
                            "--quick", "--verbose", "0"])
    assert "resuming" in capsys.readouterr().out
    assert len(open(os.path.join(pipeline_run, "stage1", "log.csv")).read().splitlines()) == 11


def test_variance_numbers_are_consistent(pipeline_run):
    summary = json.load(open(os.path.join(pipeline_run, "analysis", "variance_loss.json")))
    assert summary["pixel_variance_ratio"]["data"] == 1.0
    for row in summary["pca"]:
        assert row["mse"] == pytest.approx(row["variance_loss"], rel=1e-6, abs=1e-12)
    law = summary["variance_law"]
    assert law["latent_dim"] == 64 and 0 <= law["inactive_count"] <= 64
