"""tensorflow-datasets as the last source, refused at once when offline."""

from __future__ import annotations

import logging
import urllib.parse

import numpy as np

from vaevar.data.registry import DATASETS
from vaevar.data.trees import celeba_crop_resize
from vaevar.errors import VaevarError

TFDS_MIRROR = "storage.googleapis.com"  # tensorflow-datasets' own copies of prepared data sets
REACHABLE_TIMEOUT = 5  # seconds: offline, fail at once instead of after tensorflow-datasets' retries


def reachable(host, port=443, timeout=REACHABLE_TIMEOUT):
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds(name, split, limit):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise VaevarError(
            "tensorflow-datasets is not installed: pip install -r requirements.txt, "
            "or give a local file with --data-path"
        ) from error
    entry = DATASETS[name]
    origin = urllib.parse.urlparse(entry.origin)
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(
        logging.ERROR
    )  # "Variant folder ... has no dataset_info.json": only means not prepared
    try:
        prepared = tfds.builder(entry.tfds_name).is_prepared()
    except Exception:  # a broken tensorflow-datasets folder: let tfds.load report it
        prepared = False
    finally:
        absl_logger.setLevel(level)
    if not prepared and not any(
        reachable(host, port)
        for host, port in (
            (TFDS_MIRROR, 443),
            (origin.hostname, origin.port or (443 if origin.scheme == "https" else 80)),
        )
    ):
        raise VaevarError(
            f"{name} is not prepared in tensorflow-datasets' folder and neither {TFDS_MIRROR} nor "
            f"{origin.hostname} is reachable: offline, give a local file with --data-path or set "
            f"VAEVAR_DATA_DIR"
        )
    tfds_split = split if limit is None else f"{split}[:{limit}]"
    try:
        examples = tfds.load(DATASETS[name].tfds_name, split=tfds_split, shuffle_files=False)
    except Exception as error:  # network, missing manual download, ...
        raise VaevarError(
            f"tensorflow-datasets could not provide {name} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); offline, give a local "
            f"file with --data-path or set VAEVAR_DATA_DIR"
        ) from error
    images = [example["image"] for example in tfds.as_numpy(examples)]
    if name == "celeba":
        images = [celeba_crop_resize(image) for image in images]
    return np.stack(images).astype(np.uint8)
