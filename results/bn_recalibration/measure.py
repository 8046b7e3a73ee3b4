"""How far a short run's batch-norm moving statistics lag: reconstruction MSE and
pixel variance on test images, with the moving statistics (the authors'
inference), with batch statistics (training mode), and after
training.recalibrate_batch_norm on training images (train_first_stage.py
--recalibrate-bn). Run from the repository root:

    python results/bn_recalibration/measure.py RUN_DIR DATA_PATH OUT.json [TEST_IMAGES] [CALIBRATION_IMAGES]
"""

import json
import os
import sys

sys.path.insert(0, os.getcwd())

import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import common  # noqa: E402
import data  # noqa: E402
from training import ImageBatches, recalibrate_batch_norm  # noqa: E402

run_dir, data_path, out = sys.argv[1:4]
test_count = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
calibration_count = int(sys.argv[5]) if len(sys.argv) > 5 else 10000
model = common.load_model(os.path.join(run_dir, common.STAGE1_DIR, common.STAGE1_MODEL))
# A seeded random subset: the shared copy is class-sorted, so a prefix is two classes.
test = data.to_unit_float(data.load("cifar10", "test", data_path, limit=test_count))
data_variance = float(test.var(axis=0).sum())


def measure(training):
    outputs = [ops.convert_to_numpy(model.decoder(model.encoder(test[i:i + 100], training=training)[0],
                                                  training=training)) for i in range(0, len(test), 100)]
    reconstructions = np.concatenate(outputs)
    return {"mse_per_pixel": float(np.mean((reconstructions - test) ** 2)),
            "pixel_variance_ratio": float(reconstructions.var(axis=0).sum() / data_variance)}


results = {"run_dir": run_dir, "test_images": len(test), "test_subset": "seeded random (data.load limit)",
           "calibration_images": calibration_count,
           "decoded": "mu (the posterior mean), 100 images per batch",
           "moving_statistics": measure(False), "batch_statistics": measure(True)}
train = data.load("cifar10", "train", data_path)
batches = ImageBatches(train, 100, seed=0, epoch=10_000)
recalibrate_batch_norm(model, (batches[i] for i in range(calibration_count // 100)))
results["recalibrated"] = measure(False)
print(json.dumps(results, indent=2))
common.save_json(out, results)
