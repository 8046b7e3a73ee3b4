"""generate.py: the sample grids."""

import numpy as np

import generate


def test_grid_shapes():
    images = np.zeros((64, 32, 32, 3), np.uint8)
    grid = generate.image_grid(images, 8, 8)
    assert grid.shape == (2 * (8 * 34 + 2), 2 * (8 * 34 + 2), 3)
    pair = generate.side_by_side(images, images, 8, 8)
    assert pair.shape[1] == 2 * grid.shape[1] + 16
