"""Your own images (--dataset images): a seeded split of any folder or .zip, recorded in the run and read back by every later step."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os

import numpy as np

from vaevar import files, image_files, layout
from vaevar.data.registry import DEFAULT_IMAGE_SIZE, IMAGE_SIZES, IMAGES, SPLITS, dataset
from vaevar.errors import VaevarError


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    """--dataset images: how a folder (or .zip) of any images, flat or nested, becomes a data set. Each image
    is centre-cropped to a square and resized to image_size with Pillow; one colour file makes every image
    RGB, an all-grayscale folder stays one channel. The sorted file names are split at random with `seed`:
    a test_fraction for test, the rest for train. Stage 1 records it (folder_metadata); every later step
    reads the same split back (recorded_source)."""

    image_size: int = DEFAULT_IMAGE_SIZE
    test_fraction: float = 0.1
    seed: int = 0
    names_sha256: str | None = None  # stage 1's file names: later steps refuse added or removed ones
    channels: int | None = None  # 1: every file grayscale, else 3; None: read from the folder's headers


def folder_split(image_size: object, test_fraction: float, seed: int) -> FolderSplit:
    """A checked FolderSplit from the flags, or a one-line error saying what to give."""
    if isinstance(image_size, str) and "x" in image_size.lower():
        raise VaevarError(
            f"--image-size {image_size}: images become squares, give one side (one of "
            f"{', '.join(map(str, IMAGE_SIZES))})"
        )
    if image_size not in IMAGE_SIZES:
        raise VaevarError(
            f"--image-size {image_size}: give a power of two the network takes: {', '.join(map(str, IMAGE_SIZES))}"
        )
    if not 0 < test_fraction < 1:
        raise VaevarError(f"--test-fraction {test_fraction}: give a fraction between 0 and 1, such as 0.1")
    return FolderSplit(int(image_size), float(test_fraction), int(seed))


def requested_split(
    name: str, image_size: object, test_fraction: float, seed: int, run_dir: str
) -> FolderSplit | None:
    """The checked split the flags ask for: for "images", at --image-size, else the size run_dir's first stage
    recorded (a resume keeps its size), else DEFAULT_IMAGE_SIZE; None for a built-in data set, which refuses
    --image-size."""
    if name != IMAGES:
        if image_size is not None:
            raise VaevarError(
                f"--image-size is for --dataset images; {name} has its own size ({dataset(name).shape[0]} px)"
            )
        return None
    if image_size is None:
        recorded = recorded_source(run_dir)[1]
        image_size = recorded.image_size if recorded else DEFAULT_IMAGE_SIZE
    return folder_split(image_size, test_fraction, seed)


def names_digest(names: list[str]) -> str:
    """SHA-256 (16 hex digits) of sorted file names: which files a split was made of."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def split_names(names: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, test) names: a seeded random test_fraction (at least one) for test, each part in name order."""
    count = len(names)
    test_count = max(1, int(round(test_fraction * count)))
    if test_count >= count:
        raise VaevarError(
            f"{count} images cannot be split into train and test at --test-fraction {test_fraction}: "
            f"add images or lower the fraction"
        )
    test = set(np.random.default_rng(seed).permutation(count)[:test_count].tolist())
    return [n for i, n in enumerate(names) if i not in test], [n for i, n in enumerate(names) if i in test]


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The centred largest square of an (H, W, C) image, resized to size x size with Pillow's BILINEAR
    (widened when downscaling, as the authors' CelebA loader)."""
    from PIL import Image

    height, width, channels = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    if side == size:
        return square
    pixels = Image.fromarray(square[..., 0] if channels == 1 else square)
    return np.asarray(pixels.resize((size, size), Image.BILINEAR)).reshape(size, size, channels)


def _folder_listing(path: str | None) -> image_files.Listing:
    """The image files of --dataset images' folder, or a one-line error saying what to give."""
    if path is None:
        raise VaevarError("--dataset images needs --data-path: a folder or .zip of your images")
    if not os.path.exists(path):
        raise VaevarError(f"data path {path} does not exist: give a folder or .zip of your images")
    listing = image_files.list_images(path)
    if not listing.names:
        listing.close()
        raise VaevarError(
            f"no images ({', '.join(image_files.IMAGE_SUFFIXES)}) in {path}: give a folder or .zip of image files"
        )
    return listing


def describe_folder(folder: FolderSplit, path: str | None) -> FolderSplit:
    """folder with what stage 1 records of the files in path: the names' digest and the channel count."""
    with _folder_listing(path) as listing:
        return dataclasses.replace(
            folder, names_sha256=names_digest(listing.names), channels=_folder_channels(listing)
        )


def _folder_channels(listing: image_files.Listing) -> int:
    """1 when every file is grayscale, else 3: one colour file makes the whole folder RGB."""
    return 1 if image_files.all_grayscale(listing) else 3


def load_folder(path: str | None, split: str, folder: FolderSplit, limit: int | None = None) -> np.ndarray:
    """uint8 (N, S, S, C) images of `split` of a folder or .zip of images (FolderSplit); limit: a seeded
    random subset of the split."""
    with _folder_listing(path) as listing:
        names = listing.names
        if folder.names_sha256 and names_digest(names) != folder.names_sha256:
            raise VaevarError(
                f"the images in {path} ({len(names)} files) are not the ones stage 1 split (files were added, "
                f"removed or renamed): restore that folder or train a new run"
            )
        chosen = split_names(names, folder.test_fraction, folder.seed)[SPLITS.index(split)]
        if limit is not None and limit < len(chosen):
            chosen = [chosen[i] for i in image_files.seeded_subset(len(chosen), limit, 0)]
        channels = folder.channels or _folder_channels(listing)
        policy = image_files.ReadPolicy(
            rgb=channels == 3, transform=functools.partial(square_resize, size=folder.image_size)
        )
        return image_files.decode(listing, chosen, policy)


_FOLDER_KEYS = {  # FolderSplit field -> its key in stage1/checkpoint.json
    "image_size": "image_size",
    "test_fraction": "test_fraction",
    "seed": "split_seed",
    "names_sha256": "names_sha256",
    "channels": "channels",
}


def folder_metadata(folder: FolderSplit) -> dict[str, object]:
    """What stage 1 records of a described FolderSplit in its checkpoint.json; a resume refuses a change."""
    return {key: getattr(folder, field) for field, key in _FOLDER_KEYS.items()}


def recorded_source(run_dir: str) -> tuple[str | None, FolderSplit | None]:
    """What the first stage of run_dir read: its --data-path (None when it gave none, or for a built-in data
    set when that file is gone: the usual search then) and, for --dataset images, its FolderSplit (else None).
    Later steps default to both."""
    stage1 = layout.RunPaths(run_dir).stage1
    state, config = stage1.state, stage1.config
    recorded = files.load_json(state) if os.path.exists(state) else {}
    data_path = (files.load_json(config) if os.path.exists(config) else {}).get("data_path")
    if recorded.get("dataset") != IMAGES:
        if data_path and not os.path.exists(data_path):
            print(
                f"note: the first stage's data {data_path} is gone; looking for {recorded.get('dataset')} as usual"
            )
            data_path = None
        return data_path, None
    return data_path, FolderSplit(**{field: recorded[key] for field, key in _FOLDER_KEYS.items()})
