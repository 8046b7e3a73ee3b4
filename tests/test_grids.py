"""vaevar/grids.py: the sample grids."""

import numpy as np

from vaevar import grids


def test_grid_shapes():
    images = np.zeros((64, 32, 32, 3), np.uint8)
    grid = grids.image_grid(images, 8, 8)
    assert grid.shape == (2 * (8 * 34 + 2), 2 * (8 * 34 + 2), 3)
    pair = grids.side_by_side(images, images, 8, 8)
    assert pair.shape[1] == 2 * grid.shape[1] + 16


def test_interleave_alternates_originals_and_reconstructions():
    originals = np.full((5, 2, 2, 1), 1, np.uint8)
    reconstructions = np.full((5, 2, 2, 1), 2, np.uint8)
    out = grids.interleave(originals, reconstructions, 2, 2)  # 4 cells: 2 pairs
    assert [int(image[0, 0, 0]) for image in out] == [1, 2, 1, 2]


def test_grid_places_each_image_in_its_cell_and_saves_it(tmp_path):
    from PIL import Image

    images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1) * 60 + 10
    grid = grids.image_grid(images, 2, 2, pad=1)  # 1 px cells, pad 1, upscaled x2
    cells = grid[::2, ::2, 0]  # undo the x2
    assert cells.shape == (5, 5)
    assert [cells[1, 1], cells[1, 3], cells[3, 1], cells[3, 3]] == [10, 70, 130, 190]
    assert cells[0, 0] == 255  # the padding is white
    path = str(tmp_path / "grid.png")
    grids.save_png(path, grid)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid[..., 0])
