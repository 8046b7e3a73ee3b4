"""Separable bilinear resizing as matrices (NumPy): the Inception input's legacy TF1 resize,
and the half-pixel resize of tf.image.resize / jax.image.resize."""

import numpy as np


def resize_matrix(in_size: int, out_size: int, half_pixel: bool = True) -> np.ndarray:
    """(out_size, in_size) matrix of bilinear weights along one axis (no antialiasing).

    half_pixel=True matches tf.image.resize / jax.image.resize;
    half_pixel=False is TF1's legacy resize_bilinear(align_corners=False),
    which the 2015 Inception graph uses: source = out_index * in/out.
    """
    scale = in_size / out_size
    out = np.arange(out_size, dtype=np.float64)
    source = (out + 0.5) * scale - 0.5 if half_pixel else out * scale
    source = np.clip(source, 0.0, in_size - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = source - low
    matrix = np.zeros((out_size, in_size), np.float64)
    matrix[np.arange(out_size), low] += 1.0 - frac
    matrix[np.arange(out_size), high] += frac
    return matrix


def resize_bilinear(image: np.ndarray, height: int, width: int, half_pixel: bool = True) -> np.ndarray:
    """Resize an (H, W, C) array with separable bilinear interpolation."""
    rows = resize_matrix(image.shape[0], height, half_pixel)
    cols = resize_matrix(image.shape[1], width, half_pixel)
    return np.einsum("oh,hwc,pw->opc", rows, image, cols)
