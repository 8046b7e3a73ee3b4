"""pool_3 features of images from a data set, a sample array or a folder, batch by batch."""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import TYPE_CHECKING

import numpy as np

import data
from common import VaevarError
from fid.network import INPUT_CENTERS, build_inception

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    import keras

_NETWORKS = {}


def inception(
    image_shape: Sequence[int], weights_path: str, input_convention: str = "authors"
) -> keras.Model:
    """The port for this input size and convention, with weights loaded (built once each)."""
    key = (tuple(image_shape), weights_path, input_convention)
    if key not in _NETWORKS:
        if input_convention not in INPUT_CENTERS:
            raise VaevarError(
                f"unknown --input-convention {input_convention!r}: use {' or '.join(INPUT_CENTERS)}"
            )
        model = build_inception(tuple(image_shape), input_convention)
        try:
            model.load_weights(weights_path)
        except Exception as error:
            raise VaevarError(
                f"cannot load Inception weights {weights_path} ({type(error).__name__}): "
                f"convert them again with convert_inception.py"
            ) from error
        _NETWORKS[key] = model
    return _NETWORKS[key]


def extract_features(
    batches: Iterable[np.ndarray],
    image_shape: Sequence[int],
    weights_path: str,
    total: int,
    label: str = "",
    input_convention: str = "authors",
) -> np.ndarray:
    """pool_3 features of an iterable of [0, 255] NHWC batches (never all at 299x299)."""
    from tqdm import tqdm

    model = inception(image_shape, weights_path, input_convention)
    features = []
    with tqdm(total=total, desc=f"features {label}", unit="img", leave=False) as bar:
        for batch in batches:
            features.append(np.asarray(model.predict_on_batch(np.asarray(batch, np.float32)), np.float32))
            bar.update(len(batch))
    return np.concatenate(features)


# ------------------------------------------------------------------ the inputs


def load_source(
    source: str, split: str, count: int, data_path: str | None = None, jpeg_round_trip: bool = True
) -> np.ndarray:
    """Images (uint8, or floats in [0, 1]) of a data set name, an .npz or an image folder, at most `count`.

    A data set gives `count` images of `split` drawn at random with a fixed
    seed (data.load_evaluation, the REC inputs too).
    """
    if source in data.DATASETS:
        return data.load_evaluation(source, data_path, count, split, jpeg_round_trip)
    if source.endswith(".npz"):
        return load_sample_array(source)[:count]
    if os.path.isdir(source):
        return _folder_images(source, count)
    raise VaevarError(
        f"cannot score {source}: give a data set name ({', '.join(data.DATASETS)}), "
        f"an .npz or a folder of images"
    )


def scored_count(total: int, multiple: int) -> int:
    """How many of `total` images the authors score: whole batches of `multiple` (all if fewer)."""
    return total // multiple * multiple if total >= multiple else total


def pixel_batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """[0, 255] batches of `images`, as the network takes them."""
    return (_pixel_range(images[i : i + batch_size]) for i in range(0, len(images), batch_size))


def content_digest(images: np.ndarray, batch_size: int = 1000) -> str:
    """SHA-256 of the pixels as scored (uint8 as is, floats as [0, 255] float32): the identity of a set."""
    digest = hashlib.sha256()
    for batch in pixel_batches(images, batch_size):
        digest.update(np.ascontiguousarray(batch).tobytes())
    return digest.hexdigest()


def _pixel_range(batch):
    """uint8 as is; float samples in [0, 1] (never rounded) to [0, 255] floats."""
    return batch if batch.dtype == np.uint8 else np.asarray(batch, np.float32) * 255.0


def _folder_images(folder, count):
    """Every image of a folder (no train/test split), at most `count`."""
    from PIL import Image

    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(data.IMAGE_SUFFIXES))[:count]
    if not names:
        raise VaevarError(f"no images in {folder}")
    arrays = []
    for name in names:
        with Image.open(os.path.join(folder, name)) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    return np.stack(arrays)


def check_sample_file(path: str) -> None:
    """A readable .npz with an 'images' array, else a one-line error (cheap: nothing is decompressed)."""
    if not os.path.exists(path):
        raise VaevarError(f"{path} not found: run generate.py first")
    try:
        with np.load(path) as archive:
            if "images" not in archive.files:
                raise VaevarError(f"{path} has no 'images' array: write samples with generate.py")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise VaevarError(
            f"{path} is not a readable .npz array archive ({type(error).__name__}): "
            f"write samples with generate.py or numpy.savez"
        ) from error


def load_sample_array(path: str) -> np.ndarray:
    """Samples as generate.py writes them: NHWC floats in [0, 1] (float16 by default, never rounded) or uint8."""
    check_sample_file(path)
    with np.load(path) as archive:
        images = archive["images"]
    if images.ndim != 4 or not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise VaevarError(
            f"{path}: expected uint8 or [0, 1] float NHWC images, got {images.dtype} {images.shape}"
        )
    if images.dtype != np.uint8 and (images.min() < 0 or images.max() > 1):
        raise VaevarError(
            f"{path}: float images must lie in [0, 1], found [{images.min():.3g}, {images.max():.3g}]"
        )
    return images
