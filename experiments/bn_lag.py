"""How far a short run's batch-norm moving statistics lag: reconstruction MSE and
pixel variance of test images with the moving statistics (the inference the
authors' code uses), with batch statistics (training mode), and after
training.recalibrate_batch_norm on training images (train_first_stage.py
--recalibrate-bn). Run from the repository root:

    python -m experiments.bn_lag --run-dir runs/cifar10 --data-path cifar10_jpeg_q75.zip \
        --out results/bn_recalibration/cifar10_7_epochs.json
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json

import numpy as np

from vaevar import cli, data, errors, files, training
from vaevar.run import Run

RUN_DIR = "runs/cifar10"  # a run with a trained first stage (CIFAR-10)
DATA_PATH = None  # CIFAR-10 (else VAEVAR_DATA_DIR, else tensorflow-datasets)
OUT = "results/bn_recalibration/bn_lag.json"  # where the measurements go
TEST_IMAGES = 2000  # a seeded random subset of the test split
CALIBRATION_IMAGES = 10000  # training images whose batch statistics replace the moving ones


def reconstruction_quality(model, test, data_variance, batch_statistics):
    """Per-pixel MSE and pixel-variance ratio of decoded posterior means, 100 images per batch."""
    reconstructions = training.decode_posterior_means(model, test, batch_statistics)
    return {
        "mse_per_pixel": float(np.mean((reconstructions - test) ** 2)),
        "pixel_variance_ratio": float(reconstructions.var(axis=0).sum() / data_variance),
    }


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    model = Run.load(args.run_dir).first
    # A seeded random subset: an ImageFolder copy is class-sorted, so a prefix is two classes.
    test = data.to_unit_float(data.load("cifar10", "test", args.data_path, limit=args.test_images))
    data_variance = float(test.var(axis=0).sum())
    results = {
        "run_dir": args.run_dir,
        "test_images": len(test),
        "test_subset": "seeded random (data.load limit)",
        "calibration_images": args.calibration_images,
        "decoded": "mu (the posterior mean), 100 images per batch",
        "moving_statistics": reconstruction_quality(model, test, data_variance, False),
        "batch_statistics": reconstruction_quality(model, test, data_variance, True),
    }
    train = data.load("cifar10", "train", args.data_path)
    batches = training.ImageBatches(train, 100, seed=0, epoch=10_000)
    training.recalibrate_batch_norm(model, (batches[i] for i in range(args.calibration_images // 100)))
    results["recalibrated"] = reconstruction_quality(model, test, data_variance, False)
    print(json.dumps(results, indent=2))
    files.save_json(args.out, results)


if __name__ == "__main__":
    errors.run_main(main)
