"""Check the FID pipeline on real CIFAR-10 against numbers nobody here made.

    python tools/validate_fid.py --data-path cifar10_jpeg_q75.zip --lossless cifar10_train_first4000_lossless.npz

1. The CIFAR-10 test set (10k) vs the whole training set (50k): the
   literature's value on the lossless data (TTUR's convention) is 3.15.
2. The test set vs a random 10k of the training set (the 10k-vs-10k figure;
   TRAIN_IMAGES 10000 computes only this one). A rerun keeps part 3's result.
3. The JPEG round trip's own FID: the first 4,000 lossless training images vs
   the same 4,000 images from the JPEG copy (matched by class and position),
   and what it does to the data's variance (the paper's yardstick); skipped
   without LOSSLESS (or that file in the VAEVAR_DATA_DIR folder).
Writes OUT_DIR/fid_validation.json with the features' speed on this machine.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the clone: vaevar

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

from vaevar import cli, data, errors, files
from vaevar.data.loading import find_local

DATA_PATH = None  # the CIFAR-10 image tree / zip (else VAEVAR_DATA_DIR)
LOSSLESS = None  # .npz of the first 4,000 training images, exact pixels (x_train, y_train): part 3
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS; see vaevar/fid/weights.py
INPUT_CONVENTION = "ttur"  # the literature's 3.15 is TTUR's (x - 128) / 128
TRAIN_IMAGES = 50000  # training images for the test-vs-train FID (the literature's: all 50,000)
BATCH_SIZE = 250  # images per Inception call
OUT_DIR = "results/fid_validation"  # where fid_validation.json goes
SEED = 0  # the random training subsets


def jpeg_counterparts(jpeg_train, jpeg_labels, lossless_labels):
    """Index in the class-sorted JPEG training tree of each lossless image: the k-th image of class c
    in the official order is train/<c>/<k>.jpg (each class folder keeps the official order)."""
    class_start = {c: int(np.argmax(jpeg_labels == c)) for c in np.unique(jpeg_labels)}
    seen = {}
    index = []
    for label in lossless_labels:
        label = int(label)
        index.append(class_start[label] + seen.get(label, 0))
        seen[label] = seen.get(label, 0) + 1
    return np.array(index)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    print(backend.runtime_line(), flush=True)
    from vaevar.fid.features import extract_features
    from vaevar.fid.frechet import frechet_distance, statistics
    from vaevar.fid.weights import resolve_weights, sha256

    path = args.data_path or find_local("cifar10")
    if path is None:
        raise errors.VaevarError("give the CIFAR-10 image tree or zip with --data-path (or VAEVAR_DATA_DIR)")
    weights = resolve_weights(args.inception_weights)
    weights_hash = sha256(weights)
    train, train_labels, _ = data.load_labeled(path, "train")
    test, _, _ = data.load_labeled(path, "test")

    timings = {}

    def features(images, label):
        started = time.time()
        batches = (images[i : i + args.batch_size] for i in range(0, len(images), args.batch_size))
        out = extract_features(batches, images.shape[1:], weights, len(images), label, args.input_convention)
        timings[label] = {"images": len(images), "seconds": round(time.time() - started, 1)}
        return out

    def fid(a, b):
        return frechet_distance(*statistics(a), *statistics(b))

    results = {
        "weights_hash": weights_hash,
        "input_convention": args.input_convention,
        "data": path,
        "literature_test_vs_train": 3.15,
    }
    out_path = os.path.join(args.out_dir, "fid_validation.json")
    earlier = files.load_json(out_path) if os.path.exists(out_path) else {}
    if (
        all(earlier.get(k) == results[k] for k in ("weights_hash", "input_convention"))
        and "fid_jpeg_vs_lossless_4000" in earlier
    ):
        print("JPEG round trip: kept from the earlier run (same weights and convention)")
        timings.update(earlier.get("timings", {}))
        results.update(
            {k: v for k, v in earlier.items() if k.startswith("jpeg") or k == "fid_jpeg_vs_lossless_4000"}
        )
    elif lossless_path(args) is not None:
        jpeg_round_trip(args, path, train, train_labels, features, fid, results, timings)
    else:
        print(f"JPEG round trip skipped: no --lossless file (nor {_LOSSLESS_NAME} in VAEVAR_DATA_DIR)")
    test_features = features(test, "test_10k")
    subset = np.random.default_rng(args.seed).choice(
        len(train), min(args.train_images, len(train)), replace=False
    )
    train_features = features(train[np.sort(subset)], f"train_{len(subset)}")
    results[f"fid_test_vs_train_{len(subset)}"] = fid(test_features, train_features)
    if len(subset) > len(test):
        pick = np.random.default_rng(args.seed + 1).choice(len(subset), len(test), replace=False)
        results["fid_test_vs_train_random_10k"] = fid(test_features, train_features[pick])
    total = sum(t["images"] for t in timings.values())
    results["features_per_second"] = total / sum(t["seconds"] for t in timings.values())
    results["device"] = backend.device_description()
    files.save_json(out_path, dict(results, timings=timings))
    print(
        ", ".join(f"{k} {v:.2f}" for k, v in results.items() if k.startswith("fid_"))
        + f" (literature, test vs all 50k lossless training images: 3.15); {results['features_per_second']:.1f} "
        f"images/s"
    )


_LOSSLESS_NAME = "cifar10_train_first4000_lossless.npz"  # looked for in the VAEVAR_DATA_DIR folder


def lossless_path(args):
    if args.lossless:
        return args.lossless
    folder = os.environ.get("VAEVAR_DATA_DIR", "")
    candidate = os.path.join(folder, _LOSSLESS_NAME)
    return candidate if folder and os.path.isfile(candidate) else None


def jpeg_round_trip(args, path, train, train_labels, features, fid, results, timings):
    """FID and variance of the JPEG copy against the 4,000 lossless training images."""
    from vaevar.variance_measures import mean_squared_error, total_variance, variance_loss

    with np.load(lossless_path(args)) as stored:
        lossless, lossless_labels = stored["x_train"], stored["y_train"]
    matched = train[jpeg_counterparts(train, train_labels, lossless_labels)]
    quality = psnr(lossless, matched)
    if quality.min() < 15:
        raise errors.VaevarError(
            f"the lossless images do not match the JPEG copy (worst PSNR {quality.min():.1f} "
            f"dB): check both files"
        )
    results["jpeg_psnr_db"] = {"mean": float(quality.mean()), "min": float(quality.min())}
    lossless_variance, jpeg_variance = total_variance(lossless), total_variance(matched)
    results["jpeg_variance_4000"] = {
        "lossless_total_pixel_variance": lossless_variance,
        "jpeg_total_pixel_variance": jpeg_variance,
        "ratio": jpeg_variance / lossless_variance,
        "mse_per_pixel": mean_squared_error(lossless, matched),
        "variance_loss_per_pixel": variance_loss(lossless, matched),
    }
    print(
        f"JPEG copy vs lossless, 4,000 images: total pixel variance {jpeg_variance:.2f} vs {lossless_variance:.2f} "
        f"(ratio {jpeg_variance / lossless_variance:.4f})"
    )
    results["fid_jpeg_vs_lossless_4000"] = fid(
        features(lossless, "lossless_4000"), features(matched, "jpeg_4000")
    )
    print(f"JPEG round trip, 4,000 vs 4,000: FID {results['fid_jpeg_vs_lossless_4000']:.2f}")
    files.save_json(os.path.join(args.out_dir, "fid_validation.json"), dict(results, timings=timings))


if __name__ == "__main__":
    errors.run_main(main)
