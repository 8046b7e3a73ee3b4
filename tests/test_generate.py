"""generate.py: the sample grids."""

import os

import numpy as np

import generate


def test_grid_shapes():
    images = np.zeros((64, 32, 32, 3), np.uint8)
    grid = generate.image_grid(images, 8, 8)
    assert grid.shape == (2 * (8 * 34 + 2), 2 * (8 * 34 + 2), 3)
    pair = generate.side_by_side(images, images, 8, 8)
    assert pair.shape[1] == 2 * grid.shape[1] + 16


def test_generate_without_stage2_skips_gen2(stage1_only, mnist_npz, capsys):
    generate.main(
        ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", stage1_only, "--num-samples", "64"]
    )
    assert "GEN-2 skipped" in capsys.readouterr().out
    samples = os.path.join(stage1_only, "samples")
    assert os.path.exists(os.path.join(samples, "rec.npz")) and os.path.exists(
        os.path.join(samples, "gen1_renorm.npz")
    )
    assert not os.path.exists(os.path.join(samples, "gen2.npz"))
