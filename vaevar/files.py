"""Files written whole or not at all (atomic_path), JSON and .npz helpers, and digests of files and
weights."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

import numpy as np

from vaevar.errors import VaevarError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import keras


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    A crash leaves the old file (or none) in place, never a truncated one.
    The temporary name keeps the suffix so writers that check it (.keras,
    .npz, .png) accept it.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    suffix = ".weights.h5" if base.endswith(".weights.h5") else os.path.splitext(base)[1]
    handle, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + suffix, dir=directory)
    os.close(handle)
    os.unlink(tmp)  # writers create it themselves
    try:
        yield tmp
        _hold_for_tests(base)
        os.replace(tmp, path)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        kept = f"the previous {base} is intact" if os.path.exists(path) else f"{base} was not written"
        raise VaevarError(
            f"no space left on the device writing {path} ({kept}): free some space and rerun the same command"
        ) from error
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


CUT_WRITE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.weights\.h5|\.[A-Za-z0-9]+)?$")
HOLD_ENV = (
    "VAEVAR_TEST_HOLD_CHECKPOINT_WRITES"  # tests only: seconds a checkpoint write waits before its rename
)


def is_cut_write(name: str) -> bool:
    """Whether a file name is atomic_path's temporary name: a write that a hard stop cut off, if no writer
    is running."""
    return bool(CUT_WRITE.match(name))


def _hold_for_tests(base: str) -> None:
    """The kill test's window into a checkpoint write: the new file complete, the old one not yet replaced."""
    seconds = float(os.environ.get(HOLD_ENV) or 0)
    if seconds and base.startswith("checkpoint."):
        time.sleep(seconds)


def save_text(path: str | os.PathLike[str], text: str) -> None:
    """Text (a table, a report), written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def copy_file(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a file's bytes to `target` atomically (atomic_path)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def save_json(path: str | os.PathLike[str], obj) -> None:
    """JSON, indented, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value)}")


def load_json(path: str | os.PathLike[str]) -> dict:
    """A JSON file's contents."""
    with open(path) as f:
        return json.load(f)


def save_npz(path: str | os.PathLike[str], compress: bool = True, **arrays: np.ndarray | np.generic) -> None:
    """compress=False for large float arrays: zlib gains them ~16% (float16 images) at ~50x the time."""
    with atomic_path(path) as tmp:
        (np.savez_compressed if compress else np.savez)(tmp, **arrays)


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Save a Keras model (.keras, with optimizer state) atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(model: keras.Model) -> str:
    """SHA-256 (16 hex digits) of a model's weights: which first stage a second stage was trained on."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]
