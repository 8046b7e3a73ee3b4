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


def test_latent_fd_every_logs_the_mismatch_and_a_resume_keeps_it(tmp_path, mnist_npz):
    """--latent-fd-every 2 over 4 epochs: rows 2 and 4 hold GEN-2's latent Frechet distances and the gate's
    ratio, rows 1 and 3 leave them empty; the last row's values are those of the saved model; a resumed run
    keeps the columns of the epochs before."""
    import csv
    import os

    import train_first_stage
    import train_second_stage
    from run_folder import load_model

    run_dir = str(tmp_path / "run")
    shared = ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", run_dir, "--limit", "100"]
    shared += ["--batch-size", "50", "--verbose", "0", "--learning-rate", "0.001"]
    train_first_stage.main(shared + ["--epochs", "1", "--base-filters", "4", "--latent-dim", "8"])
    second = shared + ["--width", "16", "--latent-fd-every", "2", "--latent-fd-samples", "40"]
    train_second_stage.main(second + ["--epochs", "2"])
    train_second_stage.main(second + ["--epochs", "4"])  # resumed after epoch 2
    with open(os.path.join(run_dir, "stage2", "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert [r["latent_fd_gen2"] == "" for r in rows] == [True, False, True, False]
    for row in rows[1::2]:
        assert float(row["latent_fd_gen2"]) > 0 and float(row["latent_fd_gen2_renorm"]) > 0
        assert np.isfinite(float(row["variance_ratio"]))
    # the measure again, on the saved final model: the logged numbers (6 significant digits)
    args = train_second_stage.resolve_settings(
        train_second_stage.common.parse_constants(vars(train_second_stage), "", second + ["--epochs", "4"])
    )
    stage2 = os.path.join(run_dir, "stage2")
    first = load_model(os.path.join(run_dir, "stage1", "first_stage.keras"), compile=False)
    with np.load(os.path.join(stage2, "latents.npz")) as latents:
        measure = train_second_stage.latent_mismatch(first, args, latents["mu"], latents["sigma"])
    again = measure.measure(load_model(os.path.join(stage2, "second_stage.keras"), compile=False))
    for field in train_second_stage.LATENT_FD_FIELDS:
        assert float(rows[-1][field]) == pytest.approx(again[field], rel=1e-5)
