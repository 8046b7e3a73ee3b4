"""Image folders and .zip files in the ImageFolder (<split>/<class>/<file>) and CelebA layouts."""

from __future__ import annotations

import os

import numpy as np

from vaevar import image_files
from vaevar.data.registry import SPLITS
from vaevar.errors import VaevarError

CELEBA_CROP = (45, 173, 25, 153)  # rows 45:173, columns 25:153 (128x128)
CELEBA_SIZE = 64


def _parse_partition(partition_text):
    """Official split: list_eval_partition.txt lines 'file id' (0 train, 1 val, 2 test)."""
    table = {}
    for line in partition_text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            table[parts[0]] = int(parts[1])
    return table


def load_image_collection(path: str, split: str, celeba: bool, limit: int | None = None) -> np.ndarray:
    """Images in a folder or .zip: an ImageFolder tree or the img_align_celeba layout.

    A tree `<split>/<class>/<file>` (optionally under one root folder; the
    layout of the public CIFAR-10 JPEG copy) gives the split from the top
    folder. Otherwise (CelebA only) the split comes from
    list_eval_partition.txt (inside or beside the archive), else the last 10%
    of the sorted names are the test split. CelebA images are cropped and
    resized to 64x64.
    """
    return _read_collection(path, split, celeba, limit)[0]


def load_labeled(path: str, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images, int labels, class names) of an ImageFolder tree `<split>/<class>/<file>`;
    labels index the sorted class-folder names."""
    images, labels, classes = _read_collection(path, split, celeba=False, limit=limit, need_tree=True)
    return images, labels, classes


def _list_collection(path):
    """(image_files.Listing, the partition text or None) of a folder or .zip."""
    listing = image_files.list_images(path)
    beside = [os.path.join(os.path.dirname(path), "list_eval_partition.txt")]
    if listing.archive is None:
        return listing, _read_partition([os.path.join(path, "list_eval_partition.txt"), *beside])
    inner = [n for n in listing.archive.namelist() if n.endswith("list_eval_partition.txt")]
    return listing, listing.read(inner[0]).decode() if inner else _read_partition(beside)


def _split_tree(names):
    """names -> {split: [(class, name)]} when they form `[root/]<split>/<class>/<file>`, else None."""
    parts = [n.split("/") for n in names]
    offset = (
        1
        if parts and all(len(p) > 1 and p[0] == parts[0][0] for p in parts) and parts[0][0] not in SPLITS
        else 0
    )
    if not any(len(p) > offset and p[offset] in SPLITS for p in parts):
        return None
    tree = {}
    for name, p in zip(names, parts):
        if len(p) != offset + 3 or p[offset] not in SPLITS:
            return {"bad": name}
        tree.setdefault(p[offset], []).append((p[offset + 1], name))
    return tree


def _read_collection(path, split, celeba, limit=None, need_tree=False):
    listing, partition = _list_collection(path)
    names = listing.names
    labels = classes = None
    with listing:
        if not names:
            raise VaevarError(f"no images (.jpg/.png) found in {path}")
        tree = _split_tree(names)
        if tree is not None and "bad" in tree:
            raise VaevarError(
                f"unknown layout in {path}: {tree['bad']} is not <split>/<class>/<file> with "
                f"split train or test; arrange the images as an ImageFolder tree"
            )
        if tree is not None:
            if split not in tree:
                raise VaevarError(
                    f"{path} has no '{split}' split: expected a folder {split}/<class>/ beside "
                    f"{', '.join(sorted(tree))}/"
                )
            classes = sorted({c for entries in tree.values() for c, _ in entries})
            entries = tree[split]
            names = [n for _, n in entries]
            labels = np.array([classes.index(c) for c, _ in entries], np.int64)
        elif need_tree or not celeba:
            raise VaevarError(
                f"unknown layout in {path} (e.g. {names[0]}): expected <split>/<class>/<file> "
                f"with split train or test"
            )
        elif partition is not None:
            table = _parse_partition(partition)
            wanted = {0} if split == "train" else {2}
            names = [n for n in names if table.get(os.path.basename(n), -1) in wanted]
        else:
            cut = int(round(0.9 * len(names)))
            names = names[:cut] if split == "train" else names[cut:]
        if limit is not None and labels is not None and limit < len(names):
            keep = image_files.seeded_subset(len(names), limit, 0)  # a tree is class-sorted
            names, labels = [names[i] for i in keep], labels[keep]
        elif limit is not None:
            names = names[:limit]
        policy = CELEBA_POLICY if celeba else image_files.TRAINING
        images = image_files.decode(listing, names, policy)
    return images, labels, classes


def _read_partition(candidates):
    for candidate in candidates:
        if os.path.exists(candidate):
            with open(candidate) as f:
                return f.read()
    return None


def celeba_crop_resize(image: np.ndarray) -> np.ndarray:
    """Crop [45:173, 25:153] and resize 128 -> 64 with Pillow's BILINEAR, as the authors' loader does
    (Pillow widens the filter when downscaling: each output pixel weighs 4x4 inputs by [1, 3, 3, 1] / 8)."""
    from PIL import Image

    top, bottom, left, right = CELEBA_CROP
    if image.shape[0] < bottom or image.shape[1] < right:
        raise VaevarError(
            f"CelebA image of size {image.shape[:2]} is smaller than the crop "
            f"[45:173, 25:153]: use the aligned 178x218 images"
        )
    crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    return np.asarray(crop.resize((CELEBA_SIZE, CELEBA_SIZE), Image.BILINEAR))


CELEBA_POLICY = image_files.ReadPolicy(rgb=True, transform=celeba_crop_resize)
