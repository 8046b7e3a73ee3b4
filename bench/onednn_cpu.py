"""TensorFlow's oneDNN CPU kernels off and on, the first stage's training epoch timed in one run:

    python -m bench.onednn_cpu              # Fashion-MNIST's shape, the seeds study's width 8

TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI or newer; backend.choose sets
TF_ENABLE_ONEDNN_OPTS=1 unless the user set it. Each setting trains in its own process (TensorFlow reads the
variable when it loads): train_first_stage.py, EPOCHS epochs of IMAGES synthetic images (an .npz in the
data's shape), and the last epoch's seconds from its log.csv (the first one includes tracing). The settings
alternate over ROUNDS, so that a change in the host's speed falls on both. Results:
bench/results/onednn_<cpu>.json: seconds an epoch per setting, the ratio off / on, and each setting's
final MSE (the kernels round differently, so the numbers differ slightly).
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import csv
import os
import subprocess
import sys
import tempfile

import numpy as np

from vaevar import cli, errors, files

IMAGES = 6000  # synthetic training images per epoch
EPOCHS = 2  # epochs per process; the last one is timed
BASE_FILTERS = 8  # the first stage's width (the seeds study's)
ROUNDS = 2  # each setting this many times, alternating
OUTPUT = None  # default bench/results/onednn_<cpu>.json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def epoch_seconds(setting: str, data: str, folder: str, args) -> dict:
    """One training under TF_ENABLE_ONEDNN_OPTS=setting: its last epoch's seconds and MSE."""
    run_dir = os.path.join(folder, f"run_{setting}")
    command = [sys.executable, os.path.join(ROOT, "train_first_stage.py"), "--dataset", "fashion_mnist"]
    command += ["--data-path", data, "--run-dir", run_dir, "--base-filters", str(args.base_filters)]
    command += ["--epochs", str(args.epochs), "--seed", "0", "--allow-cpu", "--verbose", "0"]
    environ = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, KERAS_BACKEND="tensorflow")
    done = subprocess.run(command, env=environ, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        last_line = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise errors.VaevarError(f"train_first_stage.py failed: {last_line}")
    with open(os.path.join(run_dir, "stage1", "log.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    return {"seconds": float(last["seconds"]), "mse": float(last["mse"])}


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    cli.require_positive(args, "images", "epochs", "base_filters", "rounds")
    if args.epochs < 2:
        raise errors.VaevarError("--epochs must be at least 2: the first epoch includes tracing")
    rng = np.random.default_rng(0)
    times = {"0": [], "1": []}
    mse = {}
    with tempfile.TemporaryDirectory(prefix="onednn-") as folder:
        data = os.path.join(folder, "images.npz")
        shape = (28, 28)
        np.savez(
            data,
            x_train=rng.integers(0, 256, (args.images,) + shape, dtype=np.uint8),
            x_test=rng.integers(0, 256, (max(100, args.images // 10),) + shape, dtype=np.uint8),
        )
        for round_ in range(args.rounds):
            for setting in ("0", "1"):
                measured = epoch_seconds(setting, data, os.path.join(folder, str(round_)), args)
                times[setting].append(measured["seconds"])
                mse[setting] = measured["mse"]
                print(f"TF_ENABLE_ONEDNN_OPTS={setting}: {measured['seconds']:.1f} s an epoch", flush=True)
    cpu = backend.device_description()
    best = {setting: min(values) for setting, values in times.items()}
    result = {
        "device": cpu,
        "images": args.images,
        "epochs": args.epochs,
        "base_filters": args.base_filters,
        "epoch_seconds": times,
        "off_over_on": best["0"] / best["1"],
        "final_mse": mse,
    }
    name = "".join(c if c.isalnum() else "_" for c in cpu).strip("_")
    out = args.output or os.path.join(ROOT, "bench", "results", f"onednn_{name}.json")
    files.save_json(out, result)
    print(f"{cpu}: oneDNN off {best['0']:.1f} s, on {best['1']:.1f} s an epoch: {result['off_over_on']:.1f}x")
    print(f"written to {out}")


if __name__ == "__main__":
    errors.run_main(main)
