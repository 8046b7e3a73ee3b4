"""The Keras backend and the device: which backend a script uses (choose, called in its first lines),
seeding, the multi-device scope and the line that names backend, device and precision."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# Packages through which JAX reaches a GPU; without one of them JAX sees none and is not even imported.
JAX_GPU_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin")


def jax_sees_gpu() -> bool:
    """Whether JAX would find a GPU: a JAX GPU plugin is installed and the driver shows a device that
    CUDA_VISIBLE_DEVICES does not hide. Asked without starting JAX: a JAX GPU client takes most of the GPU's
    memory for as long as its process lives, which here is every script, reproduce.py's parent process too."""
    import importlib.util

    if not any(importlib.util.find_spec(name) for name in JAX_GPU_PLUGINS):
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    nvidia = "/proc/driver/nvidia/gpus"
    return (os.path.isdir(nvidia) and bool(os.listdir(nvidia))) or os.path.exists("/dev/kfd")


def installed(package: str) -> bool:
    """Whether a package can be imported, asked without importing it."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


def choose_backend(
    environ: Mapping[str, str],
    gpu_query: Callable[[], bool] = jax_sees_gpu,
    is_installed: Callable[[str], bool] = installed,
) -> str | None:
    """The backend for KERAS_BACKEND: the user's when set; unset, JAX where it sees a GPU (the fast trainer's
    home) or where TensorFlow, Keras' default, is not installed; else None (Keras' own default: TensorFlow,
    or ~/.keras/keras.json)."""
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    if gpu_query():
        return "jax"
    if not is_installed("tensorflow") and is_installed("jax"):
        return "jax"  # else `import keras` fails on the missing TensorFlow
    return None


def choose(
    environ: dict[str, str] = os.environ,
    gpu_query: Callable[[], bool] = jax_sees_gpu,
    is_installed: Callable[[str], bool] = installed,
) -> None:
    """A script's first call, before anything imports Keras: KERAS_BACKEND by choose_backend (JAX where it sees
    a GPU or TensorFlow is missing), TensorFlow's oneDNN CPU kernels on, and its start-up chatter kept out of the
    logs. Once Keras is imported the backend is
    fixed, and choose leaves it."""
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI or newer; on an AVX2
    # CPU its default convolutions trained the first stage 4x slower (bench/onednn_cpu.py)
    environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if "keras" not in sys.modules and choose_backend(environ, gpu_query, is_installed) == "jax":
        environ["KERAS_BACKEND"] = "jax"


def set_seed(seed: int) -> None:
    """Fix Python, NumPy and Keras (backend) random generators."""
    import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def distribution_scope() -> contextlib.AbstractContextManager:
    """Mirror training over all local GPUs when there are several.

    TensorFlow backend: tf.distribute.MirroredStrategy; JAX backend:
    keras.distribution.DataParallel. One or no GPU: a no-op scope.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_physical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy().scope()
    elif backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if len(gpus) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=gpus))
    return contextlib.nullcontext()


def device_description() -> str:
    """The device the backend computes on, e.g. 'NVIDIA H100 80GB HBM3' or 'CPU (AMD EPYC, 2 cores)'."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = [tf.config.experimental.get_device_details(gpu).get("device_name", "GPU") for gpu in gpus]
            return ", ".join(sorted(set(names))) + (f" x{len(gpus)}" if len(gpus) > 1 else "")
    elif backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform != "cpu"]
        if gpus:
            return ", ".join(sorted({d.device_kind for d in gpus})) + (
                f" x{len(gpus)}" if len(gpus) > 1 else ""
            )
    return f"CPU ({_cpu_name()}, {os.cpu_count()} cores)"


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or platform.machine()


def on_gpu() -> bool:
    """Whether the active backend computes on a GPU (or another accelerator)."""
    return not device_description().startswith("CPU")


def matmul_precision() -> str:
    """float32 matmuls on this device: 'TF32' where the backend rounds them to TensorFloat-32 (its default on
    NVIDIA GPUs since Ampere), else 'float32'. JAX_DEFAULT_MATMUL_PRECISION=highest asks JAX for float32."""
    import keras

    if not on_gpu():
        return "float32"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return "TF32" if tf.config.experimental.tensor_float_32_execution_enabled() else "float32"
    if keras.backend.backend() == "jax":
        import jax

        precision = str(jax.config.jax_default_matmul_precision or "default").lower()
        return "float32" if precision in ("highest", "float32") else "TF32"
    return "float32"


def runtime_line(trainer: str | None = None) -> str:
    """A script's first line: backend, device, trainer and matmul precision."""
    import keras

    line = f"backend {keras.backend.backend()} on {device_description()}"
    if trainer:
        line += f", trainer {trainer}"
    return line + f", matmul precision {matmul_precision()}"
