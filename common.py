"""Small helpers shared by the scripts: the Keras backend's choice, user-facing
errors, atomic writes, constants-as-flags, seeding, the device and the
multi-device scope. Backend-free except where noted (the device and
distribution helpers import the active backend lazily)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Container, Iterator, Mapping, Sequence

    import keras

_Settings = TypeVar("_Settings")  # settings_from's dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the logs
STARTED = (
    time.time()
)  # the command's start, near enough (scripts import common first): --time-budget counts from it
EXIT_TIME_BUDGET = 75  # a run stopped at --time-budget (sysexits' EX_TEMPFAIL): rerun to continue


# Run-directory layout, shared by every script (not flags).
RUNS_DIR = "runs"  # RUN_DIR defaults to runs/<dataset>
STAGE1_DIR, STAGE1_MODEL = "stage1", "first_stage.keras"
STAGE2_DIR, STAGE2_MODEL = "stage2", "second_stage.keras"
LATENTS_FILE, STATS_FILE = "latents.npz", "latent_stats.json"
CHECKPOINT_STATE = "checkpoint.json"  # per stage: last completed epoch and the run's settings
STAGE_CONFIG = "config.json"  # written when a stage completes: its settings and the weights' digest
SAMPLES_DIR = "samples"
KEPT_DIR = "kept"  # stage2/kept/epoch_<E>.keras: train_second_stage.py --keep-models-at
ANALYSIS_DIR = "variance_analysis"  # variance_analysis.py's figures, variance_loss.json and report.md
KINDS = ("rec", "gen1", "gen2")  # reconstructions, decoded N(0, I), decoded second-stage samples
# samples/<name>.npz that generate.py writes, in scoring order.
SAMPLE_SETS = tuple(name for kind in KINDS for name in (kind, f"{kind}_renorm"))
EXTRA_SAMPLERS = ("gauss", "gmm10", "gen2_perdim")  # generate.py --samplers: ex-post densities (samplers.py)


def kept_model_path(run_dir: str, epoch: int) -> str:
    """The second stage as it was after `epoch` (train_second_stage.py --keep-models-at)."""
    return os.path.join(run_dir, STAGE2_DIR, KEPT_DIR, f"epoch_{epoch}.keras")


def samples_dir(run_dir: str, stage2_epoch: int = 0) -> str:
    """generate.py's output folder: samples/ for the final second stage, samples_stage2_epoch_<E>/ for a kept one
    (compute_fid.py writes its fid.json and fid_table.md beside the samples of a kept one, in that folder)."""
    return os.path.join(
        run_dir, f"{SAMPLES_DIR}_stage2_epoch_{stage2_epoch}" if stage2_epoch else SAMPLES_DIR
    )


# ---------------------------------------------------------- the Keras backend

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


def choose_backend(environ: Mapping[str, str], gpu_query: Callable[[], bool] = jax_sees_gpu) -> str | None:
    """The backend for KERAS_BACKEND: the user's when set; unset, JAX where it sees a GPU (the fast trainer's
    home), else None (Keras' own default: TensorFlow, or ~/.keras/keras.json)."""
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    return "jax" if gpu_query() else None


if "keras" not in sys.modules and choose_backend(os.environ) == "jax":
    os.environ["KERAS_BACKEND"] = "jax"


class VaevarError(Exception):
    """An error the user can fix; printed as one line, no traceback."""


def deadline_of(time_budget: float) -> float | None:
    """--time-budget SECONDS, counted from the command's start -> a time.time() deadline (None: none)."""
    return STARTED + time_budget if time_budget else None


class TimeBudgetReached(Exception):
    """--time-budget: the run stopped cleanly, its last epoch checkpointed; rerunning continues it."""

    def __init__(self, done=None, epochs=None, message=None):
        super().__init__(
            message
            or f"stopped at the time budget after epoch {done} of {epochs}: rerun the same "
            f"command to continue"
        )
        self.done, self.epochs = done, epochs

    @classmethod
    def during(cls, step: str) -> TimeBudgetReached:
        return cls(
            message=f"stopped at the time budget at the {step} step: rerun the same command to continue"
        )


def run_main(main: Callable[[], object]) -> None:
    """Run a script's main(): a VaevarError becomes a one-line message and exit code 2, a stop at the time
    budget its line and EXIT_TIME_BUDGET."""
    try:
        main()
    except TimeBudgetReached as stop:
        print(str(stop), file=sys.stderr)
        sys.exit(EXIT_TIME_BUDGET)
    except VaevarError as error:
        # one line whatever the message quotes (tarfile's and pip's reasons span several)
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------- atomic files


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


def run_dir_of(dataset: str, run_dir: str | None = None) -> str:
    """RUN_DIR as given, else its default runs/<dataset>."""
    return run_dir or os.path.join(RUNS_DIR, dataset)


def check_dataset(run_dir: str, dataset: str) -> None:
    """Refuse to mix data sets: the run's first stage records the one it was trained on."""
    state = os.path.join(run_dir, STAGE1_DIR, CHECKPOINT_STATE)
    if os.path.exists(state):
        trained_on = load_json(state).get("dataset")
        if trained_on != dataset:
            raise VaevarError(
                f"{run_dir} was trained on {trained_on}, not {dataset}: "
                f"pass --dataset {trained_on} or another --run-dir"
            )


def save_json(path: str | os.PathLike[str], obj) -> None:
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


# ---------------------------------------------------------- constants as flags


def parse_constants(
    module_globals: Mapping[str, object],
    description: str,
    argv: Sequence[str] | None = None,
    positional: tuple[str, str] | None = None,
) -> argparse.Namespace:
    """Every UPPERCASE constant of a script becomes a `--lower-case` flag.

    The constant's trailing comment in the script is the flag's help. Constants
    set to None take their value from the data set's defaults later; their
    flags read an int, a float or else a string. Returns an argparse.Namespace
    with lower-case attribute names. positional: (name, help) of a list of paths before the flags.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    comments = _constant_comments(module_globals.get("__file__"))
    if positional is not None:
        parser.add_argument(positional[0], nargs="*", help=positional[1])
    for name, value in module_globals.items():
        if not name.isupper() or name.startswith("_"):
            continue
        flag = "--" + name.lower().replace("_", "-")
        help_text = f"{comments.get(name, '')} (default: {value})".strip()
        if isinstance(value, bool):
            parser.add_argument(flag, default=value, action=argparse.BooleanOptionalAction, help=help_text)
        elif isinstance(value, (int, float, str)) or value is None:
            kind = type(value) if value is not None else _number_or_text
            parser.add_argument(flag, default=value, type=kind, dest=name.lower(), help=help_text)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, settings_class: type[_Settings], **overrides) -> _Settings:
    """A library's typed settings (a dataclass) from a script's parsed flags: the fields it names, in one place."""
    import dataclasses

    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class) if hasattr(args, f.name)
    }
    return settings_class(**dict(values, **overrides))


def _constant_comments(path):
    """NAME -> the comment after `NAME = value  # comment` in a script's source."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        matches = (re.match(r"^([A-Z][A-Z0-9_]*)\s*=.*?#\s*(.+)$", line) for line in f)
        return {m.group(1): m.group(2).strip() for m in matches if m}


def _number_or_text(text):
    """Type of flags whose constant defaults to None: int, float or str as written."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def require_positive(args: argparse.Namespace, *names: str, allow_zero: Container[str] = ()) -> None:
    for name in names:
        value = getattr(args, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and name not in allow_zero):
            flag = "--" + name.replace("_", "-")
            raise VaevarError(f"{flag} must be {'>= 0' if name in allow_zero else '> 0'}, got {value}")


JIT_SETTINGS = {"auto": "auto", "on": True, "off": False}


def jit_setting(text: str) -> bool | str:
    """--jit-compile value -> model.compile's jit_compile."""
    if str(text).lower() not in JIT_SETTINGS:
        raise VaevarError(f"--jit-compile must be one of {', '.join(JIT_SETTINGS)}, got {text!r}")
    return JIT_SETTINGS[str(text).lower()]


# ------------------------------------------------------------------- seeding


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
