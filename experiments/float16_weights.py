"""How far storing the Inception weights as float16 moves FID (the float16 file is half the size,
which lets it travel where the float32 file does not):

    python -m experiments.float16_weights --samples runs/cifar10_cpu/samples/gen2.npz

Writes a copy of the converted .weights.h5 with every array rounded to float16
(loaded back into the float32 network), scores IMAGES sample images against
IMAGES test images with both files, and reports both FIDs, their difference
and the mean feature shift. Results: bench/results/float16_weights.json.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json
import os

import numpy as np

from vaevar import cli, data, errors, files
from vaevar.fid.features import extract_features, load_sample_array, pixel_batches
from vaevar.fid.frechet import frechet_distance, statistics
from vaevar.fid.weights import resolve_weights, sha256

SAMPLES = "runs/cifar10_cpu/samples/gen2.npz"  # generated images to score
DATASET = "cifar10"  # its test split is the reference
DATA_PATH = None  # local data file (else VAEVAR_DATA_DIR, else tensorflow-datasets)
IMAGES = 1000  # per side
INCEPTION_WEIGHTS = None  # the float32 file, or $VAEVAR_INCEPTION_WEIGHTS; see vaevar/fid/weights.py
FLOAT16_WEIGHTS = None  # where the float16 copy goes; default beside the float32 file
OUT = "bench/results/float16_weights.json"


def write_float16_copy(source, target):
    """The same .weights.h5 with every floating array stored as float16."""
    import h5py

    with files.atomic_path(target) as tmp, h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:

        def copy(name, item):
            if isinstance(item, h5py.Dataset):
                values = item[()]
                if np.issubdtype(values.dtype, np.floating):
                    values = values.astype(np.float16)
                dst.create_dataset(name, data=values)
            else:
                dst.require_group(name)
            for key, value in item.attrs.items():
                dst[name].attrs[key] = value

        for key, value in src.attrs.items():
            dst.attrs[key] = value
        src.visititems(copy)
    return target


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    weights32 = resolve_weights(args.inception_weights)
    weights16 = args.float16_weights or weights32.replace(".weights.h5", "_float16.weights.h5")
    write_float16_copy(weights32, weights16)
    entry = data.builtin_dataset(args.dataset)
    sets = {
        "samples": load_sample_array(args.samples)[: args.images],
        "test": data.load_evaluation(args.dataset, args.data_path, args.images, "test"),
    }
    features = {}
    for precision, path in (("float32", weights32), ("float16", weights16)):
        for name, images in sets.items():
            features[precision, name] = extract_features(
                pixel_batches(images, 100), entry.shape, path, len(images), f"{name} {precision}"
            )
    fids = {
        p: frechet_distance(
            *statistics(features[p, "samples"]), *statistics(features[p, "test"]), method="eig"
        )
        for p in ("float32", "float16")
    }
    shift = np.mean(
        [np.linalg.norm(features["float16", n] - features["float32", n], axis=1).mean() for n in sets]
    )
    norm = np.mean([np.linalg.norm(features["float32", n], axis=1).mean() for n in sets])
    results = {
        "samples": args.samples,
        "images_per_side": args.images,
        "device": backend.device_description(),
        "float32_weights_sha256": sha256(weights32),
        "float16_weights_sha256": sha256(weights16),
        "float16_file_bytes": os.path.getsize(weights16),
        "float32_file_bytes": os.path.getsize(weights32),
        "fid_float32": fids["float32"],
        "fid_float16": fids["float16"],
        "fid_difference": fids["float16"] - fids["float32"],
        "mean_feature_shift": float(shift),
        "mean_feature_norm": float(norm),
    }
    files.save_json(args.out, results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    errors.run_main(main)
