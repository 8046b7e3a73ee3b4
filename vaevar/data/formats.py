"""Readers of the data sets' own file formats: the CIFAR-10 python tarball (an allow-listed unpickler), .npz, MNIST idx."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zipfile

import numpy as np

from vaevar.errors import VaevarError


class CifarBatchUnpickler(pickle.Unpickler):
    """Only what the official python batches hold: a dict of bytes, lists, ints and NumPy arrays.
    Any other global (os.system, eval, ...) is refused by name before anything runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which no CIFAR-10 batch holds; refusing to unpickle it"
            )
        return super().find_class(module, name)


def load_cifar10_tarball(path: str, split: str) -> np.ndarray:
    """The original cifar-10-python.tar.gz: pickled batches of CHW uint8 rows, read with an allow-list."""
    wanted = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    batches = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive.getmembers():
                base = os.path.basename(member.name)
                if base in wanted:
                    raw = CifarBatchUnpickler(archive.extractfile(member), encoding="bytes").load()
                    batches[base] = np.asarray(raw[b"data"], np.uint8)
    except (
        tarfile.TarError,
        EOFError,
        OSError,
        pickle.UnpicklingError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
    ) as error:
        raise VaevarError(
            f"{path} is not a valid CIFAR-10 python tarball ({error}); download it again "
            f"from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
        ) from error
    missing = [w for w in wanted if w not in batches]
    if missing:
        raise VaevarError(
            f"{path} lacks {', '.join(missing)}: it is not a complete CIFAR-10 python "
            f"tarball; download it again"
        )
    rows = np.concatenate([batches[w] for w in wanted])
    if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
        raise VaevarError(
            f"{path}: batches of {rows.shape[1:]} values per image, CIFAR-10 has 3072; download it again"
        )
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def load_npz(path: str, split: str) -> np.ndarray:
    """An .npz of uint8 images: keys x_train/x_test (Keras layout) or train/test."""
    try:
        with np.load(path) as archive:
            keys = list(archive.keys())
            for key in (f"x_{split}", split, "images" if split == "train" else None):
                if key in keys:
                    images = archive[key]
                    break
            else:
                raise VaevarError(
                    f"{path} has no '{split}' images: expected key x_{split} or {split}, found {keys}"
                )
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise VaevarError(f"cannot read {path} as .npz ({error}): write it with numpy.savez") from error
    if images.dtype != np.uint8:
        raise VaevarError(f"{path}[{split}] has dtype {images.dtype}: store uint8 images in [0, 255]")
    if images.ndim == 3:
        images = images[..., None]
    return images


IDX_IMAGES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


def _idx_images_file(folder, split):
    """The (M)NIST-format image file of `split` in folder, plain or .gz, or None."""
    for name in (IDX_IMAGES[split], IDX_IMAGES[split] + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def load_idx_images(path: str) -> np.ndarray:
    """The original MNIST / Fashion-MNIST image files: big-endian IDX, magic 0x00000803 (uint8, 3 dims)."""
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise VaevarError(f"cannot read {path} ({error}): download it again") from error
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise VaevarError(
            f"{path} is not an IDX image file (magic {raw[:4].hex()}, expected 00000803): download it again"
        )
    count, rows, cols = np.frombuffer(raw[4:16], ">u4").astype(int)
    if len(raw) != 16 + count * rows * cols:
        raise VaevarError(
            f"{path} holds {len(raw) - 16} pixel bytes, its header promises {count}x{rows}x{cols}: "
            f"the file is truncated; download it again"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols, 1).copy()
