"""How far storing samples as float16, or rounding them to uint8, moves their Inception features
(mean L2 shift per image against float32), on GEN-1 images of a trained first stage:

    python -m experiments.float16_shift --run-dir runs/cifar10_rounding --out results/fid_rounding/float16_check.json
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json

import numpy as np

from vaevar import cli, data, errors, files, training
from vaevar.fid.features import extract_features
from vaevar.fid.weights import resolve_weights
from vaevar.run import Run

RUN_DIR = "runs/cifar10"  # a run with a trained first stage
OUT = "results/fid_rounding/float16_check.json"  # where the measurement goes
IMAGES = 250  # GEN-1 images decoded from seeded N(0, I) codes
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS; see vaevar/fid/weights.py
SEED = 0  # the latent codes


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    model = Run.load(args.run_dir).first
    z = np.random.default_rng(args.seed).standard_normal((args.images, model.latent_dim)).astype(np.float32)
    images = np.asarray(training.decode(model, z, args.images), np.float32)
    weights = resolve_weights(args.inception_weights)
    stored = {
        "float32": images * 255.0,
        "float16": images.astype(np.float16).astype(np.float32) * 255.0,
        "uint8": data.to_uint8(images),
    }
    features = {
        name: extract_features([array], images.shape[1:], weights, len(images), name)
        for name, array in stored.items()
    }

    def shift(name):
        return float(np.mean(np.linalg.norm(features[name] - features["float32"], axis=1)))

    out = {
        "images": args.images,
        "mean_feature_norm": float(np.mean(np.linalg.norm(features["float32"], axis=1))),
        "feature_shift_float16": shift("float16"),
        "feature_shift_uint8": shift("uint8"),
    }
    out["ratio"] = out["feature_shift_float16"] / out["feature_shift_uint8"]
    print(json.dumps(out, indent=1))
    files.save_json(args.out, out)


if __name__ == "__main__":
    errors.run_main(main)
