"""train_first_stage.py --keep-models-at: the copies it keeps, and the run seen with one of them (Run.load,
train_second_stage.py, generate.py and compute_fid.py with --stage1-epoch)."""

import os
import shutil

import numpy as np
import pytest

from tests.conftest import tiny_mnist
from vaevar import cli, errors, files, layout


def digest_of(path):
    from vaevar.run_folder import load_model

    return files.weights_digest(load_model(path, compile=False))


def test_kept_first_stages_and_the_run_seen_with_one(tmp_path, mnist_npz, capsys, monkeypatch):
    """--keep-models-at 1,2 over 2 epochs, then resumed to 3: the copy after epoch 2 holds the weights the
    2-epoch run ended with (a run trained to that epoch straight), the one after epoch 1 others, and the
    resume leaves both untouched. Run.load(stage1_epoch=2) decodes with that copy and without the final first
    stage's second stage; train_second_stage.py --stage1-epoch 2 trains the copy its own, which generate.py
    --stage1-epoch 2 samples; the final second stage moved beside the copy is refused by its digest."""
    import generate
    import train_first_stage
    import train_second_stage
    from vaevar.run import Run

    run_dir = str(tmp_path / "run")
    paths, view = layout.RunPaths(run_dir), layout.RunPaths(run_dir, stage1_epoch=2)
    keep = ["--keep-models-at", "2,1"]
    train_first_stage.main(tiny_mnist(mnist_npz, run_dir, epochs=2) + keep)
    straight_to_2 = files.load_json(paths.stage1.config)["weights"]  # the final model's digest
    copies = {e: open(paths.stage1.kept_model(e), "rb").read() for e in (1, 2)}
    train_first_stage.main(tiny_mnist(mnist_npz, run_dir, epochs=3) + keep)  # resumed after epoch 2
    assert "resuming" in capsys.readouterr().out
    assert {e: open(paths.stage1.kept_model(e), "rb").read() for e in (1, 2)} == copies  # not written again
    kept = {e: digest_of(paths.stage1.kept_model(e)) for e in (1, 2)}
    final = files.load_json(paths.stage1.config)["weights"]
    assert kept[2] == straight_to_2 and len({kept[1], kept[2], final}) == 3
    assert sorted(os.listdir(paths.stage1.kept_dir)) == ["epoch_1.keras", "epoch_2.keras"]

    # the copy alone: REC and GEN-1 from it, GEN-2 skipped (the final first stage's second stage is not its)
    second = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--limit", "100"]
    second += ["--batch-size", "50", "--verbose", "0", "--learning-rate", "0.001", "--width", "16"]
    train_second_stage.main(second + ["--epochs", "1"])  # on the final first stage: stage2/
    capsys.readouterr()
    run = Run.load(run_dir, stage1_epoch=2, data_path=mnist_npz, evaluation_count=16)
    assert files.weights_digest(run.first) == kept[2] and run.second is None
    assert "GEN-2 skipped" in capsys.readouterr().out and os.path.exists(paths.stage2.model)
    images = run.evaluation()["images"][:4]
    from vaevar.run_folder import load_model
    from vaevar.training import encode

    np.testing.assert_array_equal(
        run.encode(images)[0], encode(load_model(paths.stage1.kept_model(2)), images)[0]
    )
    assert run.sample(4, "gen1").shape == (4, 28, 28, 1)

    # its own second stage, in its own folder, recording the copy's digest; generate.py samples the pair
    train_second_stage.main(second + ["--epochs", "1", "--stage1-epoch", "2", "--keep-models-at", "1"])
    assert view.stage2.dir == os.path.join(run_dir, "stage2_stage1_epoch_2")
    assert files.load_json(view.stage2.state)["stage1_weights"] == kept[2]
    assert files.load_json(paths.stage2.state)["stage1_weights"] == final
    assert os.path.exists(view.latent_stats) and os.path.exists(view.kept_model(1))
    paired = Run.load(run_dir, stage1_epoch=2, data_path=mnist_npz, evaluation_count=16)
    assert files.weights_digest(paired.second) == digest_of(view.stage2.model)
    # the measured target is the copy's codes' std (its own second stage's latent_stats.json), not the final's
    measured = Run.load(
        run_dir, stage1_epoch=2, data_path=mnist_npz, evaluation_count=16, renorm_target="measured"
    )
    z_std = {p: np.mean(files.load_json(p.latent_stats)["z_std"]) for p in (view, paths)}
    assert measured.target() == pytest.approx(z_std[view], rel=1e-12)
    assert z_std[view] != pytest.approx(z_std[paths], rel=1e-3)  # the test tells the two apart
    view_flag = ["--stage1-epoch", "2"]
    generate.main(second[:6] + ["--num-samples", "16"] + view_flag)
    summary = files.load_json(os.path.join(run_dir, "samples_stage1_epoch_2", "summary.json"))
    assert summary["models"] == {"stage1": kept[2], "stage2": digest_of(view.stage2.model)}
    assert not os.path.exists(paths.samples)  # the final run's samples are untouched (none made here)
    # variance_analysis.py of the same view: the copy's samples, into its own folder
    import variance_analysis

    variance_analysis.main(
        ["--run-dirs", run_dir, "--data-path", mnist_npz, "--num-samples", "16"] + view_flag
    )
    analysed = files.load_json(view.analysis_summary)
    assert view.analysis == os.path.join(run_dir, "variance_analysis_stage1_epoch_2")
    assert analysed["stage1_epoch"] == 2 and not os.path.exists(paths.analysis)
    assert analysed["samples_summary_sha256"] == files.file_digest(view.samples_summary)
    assert "gen2" in analysed["pixel_variance"]  # the copy's own GEN-2 samples were read
    # compute_fid.py --stage1-epoch 2 scores those samples, into fid.json beside them
    import compute_fid

    args = compute_fid.check_settings(
        cli.parse_constants(
            vars(compute_fid), "", second[:6] + ["--stage1-epoch", "2"], positional=("paths", "")
        )
    )
    assert compute_fid.results_file(args) == os.path.join(view.samples, "fid.json")
    assert compute_fid.sample_files(args)[0] == os.path.join(run_dir, "samples_stage1_epoch_2", "rec.npz")

    # sweep_latent_scale.py --stage1-epoch 2 sweeps the copy's codes, into its own folder (scoring stubbed: the
    # Inception network is the sweep's own tests'; here only which models and folder count)
    import sweep_latent_scale

    def stub_score(run, images, codes, reference, args, weights):
        fid = float(np.std(codes))
        return {"fid": fid, "kid": fid, "kid_std": 0.0, "latent_fd": 0.0, "pixel_variance_ratio": 1.0}

    monkeypatch.setattr(sweep_latent_scale, "scored", stub_score)
    (tmp_path / "unused.weights.h5").write_bytes(b"")
    sweep_latent_scale.main(
        second[:6]
        + ["--num-samples", "16", "--stage1-epoch", "2", "--kinds", "gen1,gen2", "--scales", "1.0,1.2"]
        + ["--inception-weights", str(tmp_path / "unused.weights.h5")]
    )
    monkeypatch.undo()
    swept = files.load_json(os.path.join(run_dir, "scale_sweep_stage1_epoch_2", "sweep.json"))
    assert swept["stage1_epoch"] == 2 and not os.path.exists(paths.scale_sweep)
    test_std = {
        name: sweep_latent_scale.mean_std(sweep_latent_scale.encoded_test_codes(seen, 0))
        for name, seen in (
            ("copy", paired),
            ("final", Run.load(run_dir, data_path=mnist_npz, evaluation_count=16)),
        )
    }
    assert swept["test_codes_mean_std"] == pytest.approx(test_std["copy"], rel=1e-6)
    assert test_std["copy"] != pytest.approx(test_std["final"], rel=1e-3)  # the test tells the two apart
    gen2 = paired.codes("gen2", 16, 0)  # the copy's own second stage's codes, scored at s = 1
    assert swept["kinds"]["gen2"]["points"][0]["fid"] == pytest.approx(float(np.std(gen2)), rel=1e-6)

    # the final first stage's second stage put beside the copy: refused by the digest it records
    shutil.rmtree(view.stage2.dir)
    shutil.copytree(paths.stage2.dir, view.stage2.dir)
    with pytest.raises(errors.VaevarError, match="trained on another first stage") as refused:
        Run.load(run_dir, stage1_epoch=2)
    assert "\n" not in str(refused.value)
    with pytest.raises(
        errors.VaevarError, match="no first stage kept after epoch 7 .*kept: epoch_1.keras, epoch_2.keras"
    ):
        Run.load(run_dir, stage1_epoch=7)
    with pytest.raises(errors.VaevarError, match="no first stage kept after epoch 7"):
        train_second_stage.main(second + ["--epochs", "1", "--stage1-epoch", "7"])
    # a kept epoch the run has passed without its copy cannot be made any more: said before the data load
    with pytest.raises(
        errors.VaevarError, match="--keep-models-at 3: .* resumes after epoch 3 and kept no copy"
    ):
        train_first_stage.main(tiny_mnist(mnist_npz, run_dir, epochs=4) + ["--keep-models-at", "2,3"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--keep-models-at", "0,3"], "--keep-models-at 0,3: epochs start at 1"),
        (["--keep-models-at", "five"], "--keep-models-at 'five': give comma-separated epochs"),
        (["--keep-models-at", "2.5"], "--keep-models-at '2.5': give comma-separated epochs"),
    ],
)
def test_bad_kept_epochs_get_one_line(tmp_path, mnist_npz, flags, message):
    """Both stages parse the flag with kept_models.kept_epochs: the same one-line errors, before any work."""
    import train_first_stage
    import train_second_stage

    run_dir = str(tmp_path / "run")
    for main in (train_first_stage.main, train_second_stage.main):
        argv = tiny_mnist(mnist_npz, run_dir) if main is train_first_stage.main else ["--dataset", "mnist"]
        with pytest.raises(errors.VaevarError) as refused:
            main(argv + ["--run-dir", run_dir] + flags)
        assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert not os.path.exists(run_dir)


def test_a_negative_stage1_epoch_is_refused(tmp_path):
    import generate
    import train_second_stage

    for main in (train_second_stage.main, generate.main):
        with pytest.raises(errors.VaevarError, match="--stage1-epoch must be >= 0, got -1"):
            main(["--dataset", "mnist", "--run-dir", str(tmp_path), "--stage1-epoch", "-1"])
