"""pool_3 features of images from a data set, a sample array or a folder, batch by batch."""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from vaevar import data, image_files
from vaevar.errors import VaevarError
from vaevar.fid.network import INPUT_CENTERS, INPUT_SIZE, build_inception
from vaevar.fid.resize import resize_matrix

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
                f"convert them again with tools/convert_inception.py"
            ) from error
        _NETWORKS[key] = model
    return _NETWORKS[key]


def image_features(
    images: np.ndarray | list[np.ndarray],
    weights_path: str,
    batch_size: int,
    label: str = "",
    input_convention: str = "authors",
) -> np.ndarray:
    """pool_3 features of an (N, H, W, C) array, or of a list of (H, W, C) images of several sizes (a folder
    as users have it), in order. Several sizes: each image goes through the network's own TF1 bilinear
    resize to 299x299, grouped by size, before one 299x299 network."""
    if isinstance(images, np.ndarray):
        batches = pixel_batches(images, batch_size)
        return extract_features(batches, images.shape[1:], weights_path, len(images), label, input_convention)
    groups = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    order = np.concatenate([np.asarray(indices) for indices in groups.values()])

    def resized_batches():
        for (height, width, _), indices in groups.items():
            rows = resize_matrix(height, INPUT_SIZE, half_pixel=False).astype(np.float32)
            cols = resize_matrix(width, INPUT_SIZE, half_pixel=False).astype(np.float32)
            for start in range(0, len(indices), batch_size):
                batch = np.stack([images[i] for i in indices[start : start + batch_size]]).astype(np.float32)
                batch = np.einsum("oh,nhwc->nowc", rows, batch)  # the order of network.LegacyResize
                yield np.einsum("pw,nowc->nopc", cols, batch)

    size = (INPUT_SIZE, INPUT_SIZE, 3)
    features = extract_features(resized_batches(), size, weights_path, len(images), label, input_convention)
    in_order = np.empty_like(features)
    in_order[order] = features
    return in_order


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
    source: str,
    split: str,
    count: int | None,
    data_path: str | None = None,
    jpeg_round_trip: bool = True,
    seed: int = data.EVALUATION_SEED,
    datasets: bool = True,
    folder: data.FolderSplit | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Images (uint8, or floats in [0, 1]) of a data set name, an .npz or a folder / .zip of image files:
    all of them, or `count` drawn at random with `seed` (never a sorted prefix). A folder of several sizes
    gives a list of images (image_files.FID: every image RGB). datasets=False: a path, never a data set name
    (a folder called cifar10 is that folder). "images" is the data set only with its split (folder: a
    data.FolderSplit), else a folder of that name."""
    if datasets and source in data.DATASETS and not (source == data.IMAGES and folder is None):
        return data.load_evaluation(source, data_path, count, split, jpeg_round_trip, folder)
    if source.endswith(".npz"):
        images = load_sample_array(source)
        return images if count is None else images[image_files.seeded_subset(len(images), count, seed)]
    if os.path.isdir(source) or source.lower().endswith(".zip"):
        return image_files.read_images(source, image_files.FID, count, seed)
    if not os.path.exists(source):
        raise VaevarError(f"{source} not found: give a folder of images, an .npz or a statistics file")
    raise VaevarError(
        f"cannot score {source}: give a data set name ({', '.join(data.DATASETS)}), "
        f"an .npz, a folder or a .zip of images"
    )


def scored_count(total: int, multiple: int) -> int:
    """How many of `total` images the authors score: whole batches of `multiple` (all if fewer)."""
    return total // multiple * multiple if total >= multiple else total


def pixel_batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """[0, 255] batches of `images`, as the network takes them."""
    return (_pixel_range(images[i : i + batch_size]) for i in range(0, len(images), batch_size))


def content_digest(images: np.ndarray | list[np.ndarray], batch_size: int = 1000) -> str:
    """SHA-256 of the pixels as scored (uint8 as is, floats as [0, 255] float32): the identity of a set.
    A list of images of several sizes: each image's shape, then its pixels."""
    digest = hashlib.sha256()
    if not isinstance(images, np.ndarray):
        for image in images:
            digest.update(str(image.shape).encode())
            digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()
    for batch in pixel_batches(images, batch_size):
        digest.update(np.ascontiguousarray(batch).tobytes())
    return digest.hexdigest()


def _pixel_range(batch):
    """uint8 as is; float samples in [0, 1] (never rounded) to [0, 255] floats."""
    return batch if batch.dtype == np.uint8 else np.asarray(batch, np.float32) * 255.0


def check_sample_file(path: str) -> None:
    """A readable .npz with an 'images' array, else a one-line error (cheap: nothing is decompressed)."""
    if not os.path.exists(path):
        raise VaevarError(f"{path} not found: run generate.py first")
    try:
        with np.load(path) as archive:
            if "images" not in archive.files:
                raise VaevarError(
                    f"{path} has no 'images' array (keys {archive.files[:5]}): write images with "
                    f"numpy.savez(path, images=...), or statistics with compute_fid.py --save-stats"
                )
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise VaevarError(
            f"{path} is not a readable .npz array archive ({type(error).__name__}): "
            f"write samples with generate.py or numpy.savez"
        ) from error


def load_sample_array(path: str) -> np.ndarray:
    """Images of an .npz's 'images' array, NHWC (as generate.py writes them: floats in [0, 1], float16 by
    default, never rounded; or uint8). (N, H, W) is grayscale; NCHW (a channel axis of 1 or 3 first, the
    last axis not) is transposed, with a note; any other channel count is refused."""
    check_sample_file(path)
    with np.load(path) as archive:
        images = archive["images"]
    return check_images(images, path)


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """An array as the network takes it: NHWC with 1 or 3 channels, uint8 or floats in [0, 1]; (N, H, W) and
    NCHW are reshaped (NCHW with a note), anything else is a one-line error naming the shape."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        print(f"note: {name}: images {images.shape} read as NCHW (channels first)", file=sys.stderr)
        images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise VaevarError(
            f"{name}: images of shape {images.shape}: expected (N, H, W, C) or (N, C, H, W) with 1 or 3 "
            f"channels; drop an alpha channel first (images[..., :3])"
        )
    if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise VaevarError(f"{name}: expected uint8 or [0, 1] float images, got {images.dtype}")
    if images.dtype != np.uint8 and not np.isfinite(images).all():  # NaN passes the range check below
        bad = int(np.size(images) - np.count_nonzero(np.isfinite(images)))
        raise VaevarError(
            f"{name}: {bad} of {images.size} values are NaN or infinite (a generator that diverged?): "
            f"give finite images in [0, 1]"
        )
    if images.dtype != np.uint8 and (images.min() < 0 or images.max() > 1):
        raise VaevarError(
            f"{name}: float images must lie in [0, 1], found [{images.min():.3g}, {images.max():.3g}]"
        )
    return images
