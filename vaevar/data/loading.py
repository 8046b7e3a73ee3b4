"""load(name, split): a data set's uint8 images from its local file, VAEVAR_DATA_DIR or tensorflow-datasets; the evaluation set; the pixel conversions."""

from __future__ import annotations

import os

import numpy as np

from vaevar import image_files
from vaevar.data.folders import FolderSplit, load_folder
from vaevar.data.formats import _idx_images_file, load_cifar10_tarball, load_idx_images, load_npz
from vaevar.data.jpeg import _holds_jpeg_files, cached_jpeg_round_trip
from vaevar.data.registry import DATASETS, EVALUATION_SEED, IMAGES, SPLITS, dataset
from vaevar.data.tfds import _load_tfds
from vaevar.data.trees import load_image_collection
from vaevar.errors import VaevarError


def load(
    name: str,
    split: str,
    data_path: str | None = None,
    limit: int | None = None,
    jpeg_round_trip: bool = True,
    folder: FolderSplit | None = None,
) -> np.ndarray:
    """Return uint8 images (N, H, W, C) of the official `split` ('train'/'test'), or for "images" of
    `folder`'s seeded split of data_path (load_folder).

    A data set with a jpeg_quality (CIFAR-10: the authors wrote every image to
    JPEG quality 75 and read it back) gets that round trip when its source is
    lossless, cached once; a source of JPEG files is used as it is."""
    dataset(name)
    if split not in SPLITS:
        raise VaevarError(f"unknown split '{split}': use 'train' or 'test'")
    if name == IMAGES:
        if folder is None:
            raise VaevarError(
                "data.load('images', ...) needs folder= (a data.FolderSplit; a run's: data.recorded_source)"
            )
        return load_folder(data_path, split, folder, limit)
    path = data_path or find_local(name)
    if path is not None:
        images = _load_local(name, split, path, limit)
    else:
        images = _load_tfds(name, split, limit)
    if limit is not None:
        images = images[:limit]
    expected = DATASETS[name].shape
    if images.shape[1:] != expected:
        raise VaevarError(
            f"{name} images from {path or 'tensorflow-datasets'} have shape "
            f"{images.shape[1:]}, expected {expected}: check the data set name and file"
        )
    if len(images) == 0:
        raise VaevarError(f"no {split} images found for {name} in {path or 'tensorflow-datasets'}")
    quality = DATASETS[name].jpeg_quality
    if quality and jpeg_round_trip and not (path is not None and _holds_jpeg_files(path)):
        images = cached_jpeg_round_trip(images, quality)
    return images


def load_evaluation(
    name: str,
    data_path: str | None = None,
    count: int | None = 10000,
    split: str = "test",
    jpeg_round_trip: bool = True,
    folder: FolderSplit | None = None,
) -> np.ndarray:
    """The FID / REC evaluation images: `count` images of `split` drawn at random with a fixed seed
    (all of them when count is None or >= the split's size), so a source's order never matters."""
    images = load(name, split, data_path, jpeg_round_trip=jpeg_round_trip, folder=folder)
    if count is None or count >= len(images):
        return images
    return images[image_files.seeded_subset(len(images), count, EVALUATION_SEED)]


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images as float32 in [0, 1]."""
    return images.astype(np.float32) / 255.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 with rounding (for saving samples)."""
    return np.clip(np.rint(np.asarray(images, np.float64) * 255.0), 0, 255).astype(np.uint8)


def sample_array(images: np.ndarray, dtype: str = "float16") -> np.ndarray:
    """Decoded [0, 1] floats as samples are stored and scored: float16 (unrounded to within 2.4e-4), or
    rounded to uint8."""
    return to_uint8(images) if dtype == "uint8" else np.clip(images, 0, 1).astype(np.float16)


def find_local(name):
    """VAEVAR_DATA_DIR: the data file itself, or a folder holding it under a usual name."""
    root = os.environ.get("VAEVAR_DATA_DIR")
    if not root:
        return None
    if os.path.isfile(root):
        return root
    for candidate in DATASETS[name].local_names:
        path = os.path.join(root, candidate)
        if os.path.exists(path):
            return path
    return None


def _load_local(name, split, path, limit):
    if not os.path.exists(path):
        raise VaevarError(
            f"data path {path} does not exist: give the CIFAR-10 tarball, an .npz, "
            f"a folder of MNIST idx files or an image folder/.zip"
        )
    lower = path.lower()
    if lower.endswith((".tar.gz", ".tgz", ".tar")):
        return load_cifar10_tarball(path, split)
    if lower.endswith(".npz"):
        return load_npz(path, split)
    if os.path.isdir(path) and name in ("mnist", "fashion_mnist") and (idx := _idx_images_file(path, split)):
        return load_idx_images(idx)
    if lower.endswith(".zip") or os.path.isdir(path):
        return load_image_collection(path, split, celeba=(name == "celeba"), limit=limit)
    raise VaevarError(f"unrecognised data file {path}: expected .tar.gz (CIFAR-10), .npz, .zip or a folder")
