"""fid/resize.py: separable bilinear resizing as matrices."""

import numpy as np
import pytest

from vaevar.fid import resize


def test_bilinear_halving_averages_2x2_blocks():
    image = np.arange(16, dtype=np.float64).reshape(4, 4, 1)
    out = resize.resize_bilinear(image, 2, 2)
    np.testing.assert_allclose(out[..., 0], [[2.5, 4.5], [10.5, 12.5]])


def test_half_pixel_resize_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    image = np.random.default_rng(0).random((128, 128, 3))
    ours = resize.resize_bilinear(image, 64, 64)
    theirs = tf.image.resize(image[None], (64, 64), method="bilinear", antialias=False).numpy()[0]
    # TF resizes in float32: a halving's source positions (x + 0.5) * 2 - 0.5 are exact, and each output is
    # four weights of 1/4 times values <= 1: ~8 roundings, 5e-7; 1e-5 is 20x that
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
