"""End-to-end: every script on a user's own images, a flat folder of 300 PNGs of mixed sizes and modes
(tests/conftest.write_image_folder), as --dataset images --image-size 16. The later steps find the data and
the split in the run."""

import json
import os

import numpy as np
import pytest

import generate
import reproduce
import train_first_stage
from vaevar import layout, variance_measures
from vaevar.errors import VaevarError

EXPECTED_FILES = [
    "stage1/first_stage.keras",
    "stage1/log.csv",
    "stage1/checkpoint.keras",
    "stage1/config.json",
    "stage2/second_stage.keras",
    "stage2/latents.npz",
    "stage2/latent_stats.json",
    "stage2/log.csv",
    "samples/summary.json",
    "samples/latents.npz",
    "variance_analysis/variance_loss.json",
    "variance_analysis/report.md",
    "variance_analysis/mse_vs_variance_loss.png",
    "variance_analysis/pca_identity.png",
    "variance_analysis/variance_law.png",
    "variance_analysis/pixel_variance.png",
    "fid.json",
    "fid_table.md",
]


SAMPLES = 24  # generate.py's --num-samples: images per set, and test images in the FID reference
DATA = ["--dataset", "images"]  # the later steps read --data-path and the split from the run
SPLIT = [
    "--image-size",
    "16",
    "--test-fraction",
    "0.2",
    "--split-seed",
    "1",
]  # not the defaults (0.1, seed 0)


def pipeline_argv(image_folder, run_dir, inception_weights):
    """pipeline_run's reproduce.py command: --quick's settings but fewer epochs and samples."""
    return [
        *DATA,
        "--data-path",
        image_folder,
        *SPLIT,
        "--run-dir",
        run_dir,
        "--quick",
        "--inception-weights",
        inception_weights,
        "--verbose",
        "0",
        "--num-samples",
        str(SAMPLES),
        "--epochs",
        "4",
        "--stage2-epochs",
        "8",
        "--keep-models-at",
        "2",
        "--stage2-keep-models-at",
        "4",
    ]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, image_folder, random_inception_weights):
    run_dir = str(tmp_path_factory.mktemp("run"))
    reproduce.main(pipeline_argv(image_folder, run_dir, random_inception_weights))
    return run_dir


def test_every_output_is_written(pipeline_run):
    kinds = layout.SAMPLE_SETS
    expected = EXPECTED_FILES + [f"samples/{k}.npz" for k in kinds] + [f"samples/{k}.png" for k in kinds]
    expected += [f"samples/{k}_side_by_side.png" for k in layout.KINDS]
    expected += ["stage1/kept/epoch_2.keras", "stage2/kept/epoch_4.keras"]  # --keep-models-at, both stages
    missing = [f for f in expected if not os.path.exists(os.path.join(pipeline_run, f))]
    assert not missing
    leftovers = [f for _, _, files in os.walk(pipeline_run) for f in files if ".tmp" in f]
    assert not leftovers  # atomic writes leave no temporary files


def test_every_file_of_the_run_is_one_the_layout_names(pipeline_run):
    """What the scripts write is what RunPaths knows: a step writing elsewhere shows here."""
    paths = layout.RunPaths(pipeline_run)
    named = {paths.latents, paths.latent_stats, paths.sample_latents, paths.samples_summary}
    named |= {paths.fid_results, paths.fid_table}
    for stage in (paths.stage1, paths.stage2):
        named |= {stage.model, stage.checkpoint, stage.state, stage.config, stage.log, stage.curves}
    named |= {paths.stage1.kept_model(2), paths.stage2.kept_model(4)}  # pipeline_argv's --keep-models-at
    for name in layout.SAMPLE_SETS:
        named |= {paths.sample(name), paths.sample(name, "png")}
    named |= {paths.sample(f"{kind}_side_by_side", "png") for kind in layout.KINDS}
    analysis = ["variance_loss.json", "report.md", "mse_vs_variance_loss.png", "smoothing.png"]
    analysis += ["pca_identity.png", "variance_law.png", "pixel_variance.png", "latent_variance.png"]
    named |= {paths.analysis_file(name) for name in analysis}
    written = {os.path.join(folder, f) for folder, _, names in os.walk(pipeline_run) for f in names}
    assert written == named


def test_outputs_have_the_right_content(pipeline_run):
    with np.load(os.path.join(pipeline_run, "samples", "gen2_renorm.npz")) as stored:
        images = stored["images"]
    assert images.dtype == np.float16 and images.shape == (
        SAMPLES,
        16,
        16,
        3,
    )  # unrounded, as the authors score
    with np.load(os.path.join(pipeline_run, "samples", "rec.npz")) as stored:
        assert stored["images"].shape == (
            SAMPLES,
            16,
            16,
            3,
        )  # SAMPLES of the 60 test images: gray and RGB mixed -> RGB
    summary = json.load(open(os.path.join(pipeline_run, "samples", "summary.json")))
    gen2, (adjust,) = summary["kinds"]["gen2"], summary["target"]
    assert summary["renorm_target"] == "authors" and 0 < adjust
    # the 0.25 gate: both GEN-2 (per batch of up to 100, so exactly the target) and GEN-1 (N(0, I) * adjust) follow it
    assert (
        (gen2["variance_loss_ratio"] > 0.25)
        == gen2["renormalized"]
        == summary["kinds"]["gen1"]["renormalized"]
    )
    expected = adjust if gen2["renormalized"] else gen2["mean_latent_std"]
    assert gen2["mean_latent_std_renorm"] == pytest.approx(expected, rel=1e-4)
    gen1 = summary["kinds"]["gen1"]
    expected = adjust if gen1["renormalized"] else gen1["mean_latent_std"]
    assert gen1["mean_latent_std_renorm"] == pytest.approx(expected, rel=0.05)
    fid = json.load(open(os.path.join(pipeline_run, "fid.json")))
    assert set(fid) == {"rec", "rec_renorm", "gen1", "gen1_renorm", "gen2", "gen2_renorm"}
    assert all(np.isfinite(v["fid"]) and v["fid"] >= -1e-6 for v in fid.values())
    assert {v["frechet_method"] for v in fid.values()} == {
        "eig"
    }  # --quick: sqrtm takes a minute per distance
    log = open(os.path.join(pipeline_run, "stage1", "log.csv")).read().splitlines()
    assert log[0].startswith("epoch,loss,mse,gamma,kl") and len(log) == 5  # 4 epochs
    gammas = [float(row.split(",")[3]) for row in log[1:]]
    assert gammas[1] <= gammas[0] <= 1.0


def test_own_images_split_is_recorded_and_read_by_every_later_step(pipeline_run, image_folder):
    from vaevar import data

    path, folder = data.recorded_source(pipeline_run)
    assert path == image_folder
    # the flags' split (not the defaults 0.1 and seed 0), the names' digest and the channels
    assert folder == data.describe_folder(data.FolderSplit(16, 0.2, 1), image_folder)
    train, test = (data.load("images", split, path, folder=folder) for split in data.SPLITS)
    assert train.shape == (240, 16, 16, 3) and test.shape == (60, 16, 16, 3)
    from vaevar.run import Run

    run = Run.load(pipeline_run, evaluation_count=SAMPLES)  # generate.py's REC inputs, and the rule's target
    np.testing.assert_array_equal(
        run.evaluation()["images"], data.load_evaluation("images", path, SAMPLES, "test", folder=folder)
    )
    with np.load(os.path.join(pipeline_run, "stage2", "latents.npz")) as latents:
        stage2_mu = latents["mu"]
    # stage 2 encoded stage 1's training split, not another one: the same encoder on the same images differs
    # by the rounding of float32 conv sums (reordered in other batch sizes, ~1e-6 of the codes), other images
    # by the codes' own spread (asserted: the test split's first 60 against the training split's)
    encoded = run.encode(train)[0]
    np.testing.assert_allclose(stage2_mu, encoded, rtol=1e-4, atol=1e-4)
    assert np.abs(run.encode(test)[0] - encoded[: len(test)]).max() > 100 * 1e-4
    fid = json.load(open(os.path.join(pipeline_run, "fid.json")))
    assert {entry["reference_n"] for entry in fid.values()} == {
        SAMPLES
    }  # SAMPLES of the run's 60 test images
    assert "paper" not in open(os.path.join(pipeline_run, "fid_table.md")).read()  # no paper numbers here


def test_the_api_on_the_run_gives_generate_pys_arrays(pipeline_run):
    import dataclasses

    from vaevar import data
    from vaevar.run import Run

    run = Run.load(
        pipeline_run, evaluation_count=SAMPLES
    )  # generate.py's --num-samples SAMPLES; data and split: the run's
    assert (run.dataset, run.folder.image_size) == ("images", 16)
    for kind in layout.KINDS:
        made = run.images(kind, run.codes(kind, SAMPLES, seed=0))
        for name, images in ((kind, made["plain"]), (f"{kind}_renorm", made["renormalized"])):
            with np.load(os.path.join(pipeline_run, "samples", f"{name}.npz")) as stored:
                np.testing.assert_array_equal(stored["images"], np.clip(images, 0, 1).astype(np.float16))
    sample = run.sample(8, "gen2", renormalize=True, seed=5)
    assert sample.dtype == np.uint8 and sample.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(sample, run.sample(8, "gen2", renormalize=True, seed=5))
    assert not np.array_equal(run.sample(8, "gen2", seed=5), run.sample(8, "gen2", seed=6))
    run.rule = dataclasses.replace(run.rule, renorm_threshold=0)  # the gate open: the rule's std, per batch
    forced = run.images("gen2", run.codes("gen2", SAMPLES, seed=0))
    assert forced["applied"]
    assert np.mean(forced["z_renorm"].std(0)) == pytest.approx(np.mean(run.target()), rel=1e-5)
    assert not np.allclose(
        forced["z_renorm"], run.codes("gen2", SAMPLES, seed=0)
    )  # GEN-2's std is not the target
    # the API's renormalized samples are those codes decoded, not the plain samples
    renormalized = run.sample(SAMPLES, "gen2", renormalize=True, seed=0)
    np.testing.assert_array_equal(renormalized, data.to_uint8(run.decode(forced["z_renorm"])))
    assert not np.array_equal(renormalized, run.sample(SAMPLES, "gen2", seed=0))


def test_same_seed_same_samples(pipeline_run, tmp_path):
    import shutil

    first = np.load(os.path.join(pipeline_run, "samples", "gen2_renorm.npz"))["images"]
    copy = str(tmp_path / "copy")
    shutil.copytree(os.path.join(pipeline_run, "stage1"), os.path.join(copy, "stage1"))
    shutil.copytree(os.path.join(pipeline_run, "stage2"), os.path.join(copy, "stage2"))
    generate.main([*DATA, "--run-dir", copy, "--num-samples", str(SAMPLES)])
    np.testing.assert_array_equal(np.load(os.path.join(copy, "samples", "gen2_renorm.npz"))["images"], first)
    generate.main(
        [
            *DATA,
            "--run-dir",
            copy,
            "--num-samples",
            str(SAMPLES),
            "--sample-dtype",
            "uint8",
        ]
    )
    rounded = np.load(os.path.join(copy, "samples", "gen2_renorm.npz"))["images"]
    assert rounded.dtype == np.uint8  # the same images, rounded
    assert np.abs(rounded.astype(np.int16) - np.rint(first.astype(np.float64) * 255)).max() <= 1
    with pytest.raises(VaevarError, match="sample-dtype"):
        generate.main([*DATA, "--run-dir", copy, "--sample-dtype", "int8"])
    generate.main(
        [
            *DATA,
            "--run-dir",
            copy,
            "--num-samples",
            str(SAMPLES),
            "--seed",
            "1",
        ]
    )
    assert not np.array_equal(
        np.load(os.path.join(copy, "samples", "gen1.npz"))["images"],
        np.load(os.path.join(pipeline_run, "samples", "gen1.npz"))["images"],
    )


def test_rerun_of_a_finished_training_resumes_not_restarts(pipeline_run, image_folder, capsys, monkeypatch):
    train_first_stage.main(
        [
            *DATA,
            "--data-path",
            image_folder,
            *SPLIT,
            "--run-dir",
            pipeline_run,
            "--quick",
            "--epochs",
            "4",
            "--verbose",
            "0",
        ]
    )
    assert "resuming" in capsys.readouterr().out
    assert len(open(os.path.join(pipeline_run, "stage1", "log.csv")).read().splitlines()) == 5
    # another split of the same folder is refused, before any image is decoded
    from vaevar.data import loading

    def no_decoding(*args):
        raise AssertionError("decoded images before refusing")

    monkeypatch.setattr(loading, "load_folder", no_decoding)
    other = [*DATA, "--data-path", image_folder, *SPLIT, "--test-fraction", "0.3", "--run-dir", pipeline_run]
    with pytest.raises(VaevarError, match="holds a run with test_fraction=0.2, not 0.3"):
        train_first_stage.main(other + ["--quick", "--epochs", "4"])


def test_variance_numbers_are_consistent(pipeline_run):
    summary = json.load(open(layout.RunPaths(pipeline_run).analysis_summary))
    assert summary["pixel_variance_ratio"]["data"] == 1.0
    for row in summary["pca"]:
        assert row["mse"] == pytest.approx(row["variance_loss"], rel=1e-6, abs=1e-12)
    for kind, variance in summary["pixel_variance"].items():
        assert summary["pixel_variance_ratio"][kind] == pytest.approx(
            variance / summary["pixel_variance"]["data"]
        )
    assert (
        summary["pixel_variance_ratio"]["reconstruction"] < 1.0
    )  # the paper's effect: reconstructions lose variance
    assert summary["variance_law"]["latent_dim"] == 64
    mismatch = summary["latent_frechet_distance"]  # every latent sampler against the encoded test codes
    assert (
        set(mismatch["against z"])
        == set(mismatch["against mu"])
        == {"gen1", "gen1_renorm", "gen2", "gen2_renorm"}
    )
    assert all(np.isfinite(v) and v >= -1e-6 for v in mismatch["against z"].values())
    lag = summary["batch_norm"]  # the reconstructions again with batch statistics, and the note if they lag
    assert lag["mse_moving_statistics"] == summary["reconstruction_mse"] and lag["mse_batch_statistics"] > 0
    assert lag["note"] == variance_measures.batch_norm_lag_note(
        lag["mse_moving_statistics"], lag["mse_batch_statistics"]
    )
    report = open(layout.RunPaths(pipeline_run).analysis_file("report.md")).read()
    assert f"MSE {lag['mse_batch_statistics']:.5f}" in report and (
        lag["note"] in report if lag["note"] else "Batch-norm lag" not in report
    )
    # both stages drew their curves, and the report links them
    assert "Training curves: [stage1](../stage1/curves.png), [stage2](../stage2/curves.png)." in report


def test_ex_post_samplers_are_written_and_scored(pipeline_run, random_inception_weights, tmp_path):
    import shutil

    copy = str(tmp_path / "copy")
    for stage in ("stage1", "stage2"):
        shutil.copytree(os.path.join(pipeline_run, stage), os.path.join(copy, stage))
    generate.main(
        [
            *DATA,
            "--run-dir",
            copy,
            "--num-samples",
            str(SAMPLES),
            "--samplers",
            "gauss,gen2_perdim",
        ]
    )
    summary = json.load(open(os.path.join(copy, "samples", "summary.json")))
    assert set(summary["samplers"]) == {"gauss", "gen2_perdim"}
    latents = np.load(os.path.join(copy, "samples", "latents.npz"))
    train_mu = np.load(os.path.join(copy, "stage2", "latents.npz"))["mu"]
    assert summary["samplers"]["gauss"]["latent_variance"] == pytest.approx(
        float(np.sum(np.var(latents["gauss"], 0)))
    )
    assert summary["samplers"]["gauss"]["latent_variance"] == pytest.approx(
        float(np.sum(np.var(train_mu, 0))), rel=0.3
    )
    with pytest.warns(UserWarning):
        import compute_fid

        samples = ",".join(os.path.join(copy, "samples", f"{name}.npz") for name in ("gauss", "gen2_perdim"))
        compute_fid.main(
            [
                *DATA,
                "--run-dir",
                copy,
                "--num-samples",
                str(SAMPLES),
                "--samples",
                samples,
                "--no-train-reference",
                "--inception-weights",
                random_inception_weights,
                "--frechet-method",
                "eig",
            ]
        )
    fid = json.load(open(os.path.join(copy, "fid.json")))
    assert {"gauss", "gen2_perdim"} <= set(fid)
    table = open(os.path.join(copy, "fid_table.md")).read()
    assert f"| gauss | {fid['gauss']['fid']:.2f} |" in table


def test_reproduce_rerun_on_a_finished_run_trains_nothing_and_says_what_it_skipped(
    pipeline_run, image_folder, random_inception_weights, capfd
):
    logs = {
        stage: open(os.path.join(pipeline_run, stage, "log.csv")).read() for stage in ("stage1", "stage2")
    }
    summary = open(os.path.join(pipeline_run, "samples", "summary.json")).read()
    reproduce.main(
        pipeline_argv(image_folder, pipeline_run, random_inception_weights)
    )  # the fixture's command
    out = capfd.readouterr().out
    for step in ("stage 1", "stage 2", "samples", "variance analysis"):
        assert f"== {step}: skipped, {pipeline_run} holds it" in out
    assert "train_first_stage.py" not in out and "generate.py" not in out and "== FID: compute_fid.py" in out
    assert (
        out.count("in " + os.path.join(pipeline_run, "fid.json") + " for the same images") == 6
    )  # FID skips its sets
    assert {stage: open(os.path.join(pipeline_run, stage, "log.csv")).read() for stage in logs} == logs
    assert open(os.path.join(pipeline_run, "samples", "summary.json")).read() == summary


def test_reproduce_refuses_another_split_of_the_run(pipeline_run, image_folder):
    """A finished stage 1 is skipped, so other split flags would be silently ignored: refused instead."""
    argv = [*DATA, "--data-path", image_folder, "--run-dir", pipeline_run, "--quick"]
    with pytest.raises(
        VaevarError, match="split its images at size 16, test fraction 0.2, seed 1: pass those"
    ):
        reproduce.main(argv + ["--image-size", "16"])  # the defaults: fraction 0.1, seed 0
    with pytest.raises(VaevarError, match="--image-size is for --dataset images"):
        reproduce.main(["--dataset", "mnist", "--image-size", "16", "--run-dir", pipeline_run])


def test_reproduce_says_a_step_refused_before_it_began_left_nothing_to_resume(
    tmp_path, mnist_npz, monkeypatch
):
    """reproduce.py over a stage 1 refused by the CPU estimate: its own line says nothing began (not that a
    rerun resumes) and how to go on; the run folder stays empty."""
    import reproduce

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("VAEVAR_DATA_DIR", "")
    run_dir = tmp_path / "refused"
    argv = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", str(run_dir), "--skip-fid"]
    with pytest.raises(VaevarError) as refused:
        reproduce.main(argv + ["--epochs", "50000000", "--verbose", "0"])
    message = str(refused.value)
    assert message.startswith("stage 1 (train_first_stage.py) stopped before it began")
    assert "nothing to resume" in message and "--quick and --allow-cpu" in message
    assert "resumes" not in message
    assert not os.path.exists(run_dir / "stage1")
