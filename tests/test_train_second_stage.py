"""train_second_stage.py: the measures it logs, the models it keeps, its checks."""

import dataclasses

import numpy as np
import pytest

from vaevar import cli, errors, files, layout


def test_latent_fd_every_and_kept_models_over_a_resumed_run(
    tmp_path, mnist_npz, trained_stage1, random_inception_weights
):
    """--latent-fd-every 2 over 4 epochs: rows 2 and 4 hold GEN-2's latent Frechet distances and the gate's
    ratio, rows 1 and 3 leave them empty; the last row's values are those of the saved model; a resumed run
    keeps the columns of the epochs before. --keep-models-at 3,4: the copy after epoch 4 is the final model,
    the one after epoch 3 is not. The first stage: a copy of conftest's tiny one."""
    import csv
    import os
    import shutil

    import train_second_stage
    from vaevar.run_folder import load_model

    run_dir = str(tmp_path / "run")
    shared = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--limit", "100"]
    shared += ["--batch-size", "50", "--verbose", "0", "--learning-rate", "0.001"]
    shutil.copytree(trained_stage1, run_dir)
    second = shared + ["--width", "16", "--latent-fd-every", "2", "--latent-fd-samples", "40"]
    second += ["--keep-models-at", "3,4"]
    train_second_stage.main(second + ["--epochs", "2"])
    curves = os.path.join(run_dir, "stage2", "curves.png")
    drawn = open(curves, "rb").read()
    train_second_stage.main(second + ["--epochs", "4"])  # resumed after epoch 2
    assert open(curves, "rb").read() != drawn  # redrawn at the resumed run's checkpoints
    assert os.path.exists(os.path.join(run_dir, "stage1", "curves.png"))
    with open(os.path.join(run_dir, "stage2", "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert [r["latent_fd_gen2"] == "" for r in rows] == [True, False, True, False]
    for row in rows[1::2]:
        assert float(row["latent_fd_gen2"]) > 0 and float(row["latent_fd_gen2_renorm"]) > 0
        assert np.isfinite(float(row["variance_ratio"]))
    # the measure again, on the saved final model: the logged numbers (6 significant digits)
    args = train_second_stage.resolve_settings(
        cli.parse_constants(vars(train_second_stage), "", second + ["--epochs", "4"])
    )
    stage2 = os.path.join(run_dir, "stage2")
    first = load_model(os.path.join(run_dir, "stage1", "first_stage.keras"), compile=False)
    with np.load(os.path.join(stage2, "latents.npz")) as latents:
        measure = train_second_stage.latent_mismatch(first, args, latents["mu"], latents["sigma"])
    final = load_model(os.path.join(stage2, "second_stage.keras"), compile=False)
    again = measure.measure(final, 4)
    for field in train_second_stage._LATENT_FD_FIELDS:
        assert float(rows[-1][field]) == pytest.approx(again[field], rel=1e-5)
    # GEN-2's distance by hand: to the encoded test codes z = mu + sigma * eps (the seed's first draw; its second
    # draws GEN-2's u), not to their means mu, which are far less spread
    from vaevar.fid.frechet import frechet_distance, statistics
    from vaevar.training import decode, encode

    test = train_second_stage.data.load_evaluation("mnist", mnist_npz, 40, "test")
    test_mu, test_sigma = encode(first, test)
    rng = np.random.default_rng(args.seed)
    z_test = test_mu + test_sigma * rng.standard_normal(test_mu.shape).astype(np.float32)
    gen2 = statistics(decode(final, rng.standard_normal(test_mu.shape).astype(np.float32)))
    by_hand = frechet_distance(*statistics(z_test), *gen2)
    against_mu = frechet_distance(*statistics(test_mu), *gen2)
    assert abs(by_hand - against_mu) > 1e-3 * by_hand  # the test can tell the two apart
    # float32 codes, float64 statistics: 6 significant digits logged
    assert float(rows[-1]["latent_fd_gen2"]) == pytest.approx(by_hand, rel=1e-5)
    kept = {e: load_model(layout.RunPaths(run_dir).kept_model(e), compile=False) for e in (3, 4)}
    digest = files.weights_digest
    assert digest(kept[4]) == digest(final) != digest(kept[3])
    # generate.py --stage2-epoch 3: GEN-2 from the kept copy, into its own folder; an epoch not kept is named
    import generate

    generate.main(shared[:6] + ["--num-samples", "16", "--stage2-epoch", "3"])
    summary = files.load_json(os.path.join(run_dir, "samples_stage2_epoch_3", "summary.json"))
    assert summary["models"]["stage2"] == digest(kept[3])
    with pytest.raises(errors.VaevarError, match="kept: epoch_3.keras, epoch_4.keras"):
        generate.main(shared[:6] + ["--num-samples", "16", "--stage2-epoch", "7"])
    # the Python API on the same run: generate.py's arrays are the API's for the same seed and kept model
    from vaevar.run import Run

    run = Run.load(run_dir, stage2_epoch=3, data_path=mnist_npz, evaluation_count=16)
    samples = os.path.join(run_dir, "samples_stage2_epoch_3")
    for kind in ("rec", "gen1", "gen2"):
        made = run.images(kind, run.codes(kind, 16, seed=0))
        with np.load(os.path.join(samples, f"{kind}.npz")) as stored:
            np.testing.assert_array_equal(stored["images"], np.clip(made["plain"], 0, 1).astype(np.float16))
    np.testing.assert_array_equal(run.sample(8, "gen2", seed=5), run.sample(8, "gen2", seed=5))
    assert not np.array_equal(run.sample(8, "gen2", seed=5), run.sample(8, "gen2", seed=6))
    # renormalized GEN-2 codes: each batch of 100 (here all 16) rescaled to the rule's target std
    made = run.images("gen2", run.codes("gen2", 16, seed=0))
    if made["applied"]:
        assert np.mean(made["z_renorm"].std(0)) == pytest.approx(np.mean(run.target()), rel=1e-5)
    renormed = Run.load(run_dir, stage2_epoch=3, data_path=mnist_npz, evaluation_count=16)
    renormed.rule = dataclasses.replace(renormed.rule, renorm_threshold=0)  # the gate always open
    forced = renormed.images("gen2", renormed.codes("gen2", 16, seed=0))
    assert forced["applied"] and np.mean(forced["z_renorm"].std(0)) == pytest.approx(
        np.mean(renormed.target()), rel=1e-5
    )
    assert run.reconstruct(run.evaluation()["images"][:4]).dtype == np.uint8
    # run.fid: compute_fid.py's number for the same images (the run's test reference, whole batches of 64)
    import compute_fid

    gen1 = os.path.join(samples, "gen1.npz")
    flags = [
        "--num-samples",
        "16",
        "--inception-weights",
        random_inception_weights,
        "--frechet-method",
        "eig",  # seconds; sqrtm of 2048 x 2048 took 8 s a distance here
    ]
    with pytest.warns(UserWarning):  # fewer samples than features: a singular covariance
        compute_fid.main(
            shared[:6] + ["--stage2-epoch", "3", "--samples", gen1, "--no-train-reference"] + flags
        )
        api = dict(weights=random_inception_weights, num_samples=16, frechet_method="eig")
        scores = run.score(np.load(gen1)["images"], **api)
        fid = run.fid(np.load(gen1)["images"], **api)
    scored = files.load_json(os.path.join(samples, "fid.json"))["gen1"]
    assert fid == scores["fid"] == pytest.approx(scored["fid"], rel=1e-9)
    for key in ("kid", "kid_std", "precision", "recall"):  # the API's scores are compute_fid.py's
        assert scores[key] == pytest.approx(scored[key], rel=1e-9), key
