"""The authors' preprocessing: a JPEG round trip of lossless sources, cached under the images' SHA-256."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np

from vaevar.files import atomic_path


def jpeg_round_trip(images: np.ndarray, quality: int) -> np.ndarray:
    """Each image written to JPEG (Pillow, 4:2:0 chroma subsampling, as imageio's .jpg) and read back."""
    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            buffer, format="JPEG", quality=quality, subsampling=2
        )
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded).reshape(image.shape)
    return out


def cache_dir() -> str:
    """Where derived data (the JPEG round trip) is cached: $VAEVAR_CACHE_DIR, else ~/.cache/vaevar."""
    return os.environ.get("VAEVAR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vaevar")


def cached_jpeg_round_trip(images: np.ndarray, quality: int) -> np.ndarray:
    """jpeg_round_trip, cached under the SHA-256 of the lossless images (a minute for CIFAR-10, once)."""
    key = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:20]
    path = os.path.join(cache_dir(), f"jpeg_q{quality}_{key}.npz")
    if os.path.exists(path):
        try:
            with np.load(path) as stored:
                if stored["images"].shape == images.shape:
                    return stored["images"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache entry is recomputed
    round_tripped = jpeg_round_trip(images, quality)
    with atomic_path(path) as tmp:
        np.savez(tmp, images=round_tripped)
    return round_tripped


def _holds_jpeg_files(path):
    """A folder or .zip of .jpg/.jpeg images: already JPEG'd, never compressed twice."""
    lower = path.lower()
    if lower.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.lower().endswith((".jpg", ".jpeg")) for n in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    if os.path.isdir(path):
        return any(f.lower().endswith((".jpg", ".jpeg")) for _, _, files in os.walk(path) for f in files)
    return False
