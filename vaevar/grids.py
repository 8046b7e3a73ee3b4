"""Image grids as PNG files: generate.py's sample grids and the paper's same-seed side by sides."""

from __future__ import annotations

import numpy as np

from vaevar import files


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """Tile uint8 NHWC images into one uint8 image, upscaled x2 below 64 px."""
    images = np.asarray(images)[: rows * cols]
    n, h, w, c = images.shape
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w
        ] = image
    if h < 64:
        grid = grid.repeat(2, axis=0).repeat(2, axis=1)
    return grid


def save_png(path: str, grid: np.ndarray) -> None:
    """A uint8 grid (one channel or three) as a PNG, written atomically."""
    from PIL import Image

    with files.atomic_path(path) as tmp:
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(tmp, format="PNG")


def side_by_side(left: np.ndarray, right: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Two grids with a gap: left without, right with renormalization."""
    a, b = image_grid(left, rows, cols), image_grid(right, rows, cols)
    gap = np.full((a.shape[0], 16, a.shape[2]), 255, np.uint8)
    return np.concatenate([a, gap, b], axis=1)


def interleave(originals: np.ndarray, reconstructions: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """REC grid: originals and reconstructions in alternating columns."""
    pairs = min(rows * cols // 2, len(originals))  # a set smaller than the grid leaves cells blank
    out = np.empty((2 * pairs,) + originals.shape[1:], np.uint8)
    out[0::2], out[1::2] = originals[:pairs], reconstructions[:pairs]
    return out
