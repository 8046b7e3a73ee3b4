"""Image files as users have them: one reader for training data and for FID.

A source is a folder (searched recursively) or a .zip. The reader lists its image files, decodes them with
Pillow and applies a ReadPolicy, which is where the two uses differ: training needs one size and one
channel count; FID takes any mix of sizes and modes (every image to RGB, each size resized to 299 later).
A corrupt file, an empty source or a mix the policy refuses is a one-line error naming it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from collections.abc import Callable, Sequence

import numpy as np

from vaevar.errors import VaevarError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclasses.dataclass(frozen=True)
class ReadPolicy:
    """How decoded images become arrays."""

    rgb: bool = False  # True: every image to RGB (grayscale repeated); False: grayscale stays one channel
    mixed_sizes: bool = False  # True: images of several sizes come back as a list; False: refused
    transform: Callable[[np.ndarray], np.ndarray] | None = None  # per image (CelebA's crop, a resize)


TRAINING = ReadPolicy()
FID = ReadPolicy(rgb=True, mixed_sizes=True)


@dataclasses.dataclass
class Listing:
    """The image files of a source: sorted names (relative, '/'-separated) and a reader of their bytes."""

    path: str
    names: list[str]
    read: Callable[[str], bytes]
    archive: zipfile.ZipFile | None = None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def list_images(path: str) -> Listing:
    """The image files of a folder (recursively) or a .zip, sorted by name."""

    def read_file(name):
        with open(os.path.join(path, name), "rb") as f:
            return f.read()

    try:
        if os.path.isdir(path):
            names = sorted(
                os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
                for d, _, files in os.walk(path)
                for f in files
                if _is_image(f)
            )
            return Listing(path, names, read_file)
        archive = zipfile.ZipFile(path)
        names = sorted(n for n in archive.namelist() if _is_image(n) and not n.startswith("__MACOSX/"))
        return Listing(path, names, archive.read, archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise VaevarError(
            f"{path} is not a readable image folder or .zip ({type(error).__name__}: {error})"
        ) from error


def _is_image(name: str) -> bool:
    """An image file by its suffix, not macOS's AppleDouble companion (._name)."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not os.path.basename(name).startswith("._")


def is_grayscale(mode: str) -> bool:
    """A Pillow mode that decode keeps as one channel (8- or 16-bit gray, bilevel); any other becomes RGB."""
    return mode in ("L", "1") or mode.startswith("I;16")


def all_grayscale(listing: Listing) -> bool:
    """Whether every image of a listing is grayscale, from the file headers alone (Pillow decodes lazily)."""
    from PIL import Image, UnidentifiedImageError

    for name in listing.names:
        try:
            with Image.open(io.BytesIO(listing.read(name))) as image:
                if not is_grayscale(image.mode):
                    return False
        except (UnidentifiedImageError, OSError, zipfile.BadZipFile, ValueError) as error:
            raise VaevarError(
                f"cannot read image {name} in {listing.path} ({type(error).__name__}): replace or remove it"
            ) from error
    return True


def decode(listing: Listing, names: Sequence[str], policy: ReadPolicy) -> np.ndarray | list[np.ndarray]:
    """uint8 (N, H, W, C) images of `names`, or with policy.mixed_sizes and several sizes a list of
    (H, W, C) arrays in the same order."""
    from PIL import Image, UnidentifiedImageError

    if not names:
        raise VaevarError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {listing.path}")
    images = []
    for name in names:
        try:
            with Image.open(io.BytesIO(listing.read(name))) as image:
                if image.mode.startswith("I;16"):  # 16-bit gray: to 8 bits (Pillow's convert would clip)
                    array = (np.asarray(image, np.uint16) >> 8).astype(np.uint8)
                    array = np.repeat(array[..., None], 3, axis=-1) if policy.rgb else array
                else:
                    gray = is_grayscale(image.mode) and not policy.rgb
                    array = np.asarray(image.convert("L" if gray else "RGB"))
        except (
            UnidentifiedImageError,
            OSError,
            zipfile.BadZipFile,
            ValueError,
            Image.DecompressionBombError,
        ) as error:
            raise VaevarError(
                f"cannot read image {name} in {listing.path} ({type(error).__name__}): replace or remove it"
            ) from error
        if array.ndim == 2:
            array = array[..., None]
        images.append(policy.transform(array) if policy.transform else array)
    shapes = {a.shape for a in images}
    if len({s[2] for s in shapes}) > 1:
        raise VaevarError(
            f"images in {listing.path} mix grayscale and RGB (channels {sorted({s[2] for s in shapes})}): "
            f"convert them all to one mode first"
        )
    if len(shapes) == 1:
        return np.stack(images)
    if policy.mixed_sizes:
        return images
    raise VaevarError(
        f"images in {listing.path} have different sizes {sorted(shapes)[:3]}: "
        f"resize them to the data set's size first"
    )


def read_images(
    path: str, policy: ReadPolicy, count: int | None = None, seed: int = 0
) -> np.ndarray | list[np.ndarray]:
    """Every image of a folder or .zip (no split), or a seeded random `count` of them (never a sorted
    prefix: file names often sort by class)."""
    with list_images(path) as listing:
        names = listing.names
        if count is not None and count < len(names):
            names = [names[i] for i in seeded_subset(len(names), count, seed)]
        return decode(listing, names, policy)


def seeded_subset(total: int, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` of `total` items drawn at random with `seed` (all of them when
    count >= total): a prefix of a class-sorted source would be a few classes."""
    if count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))
