"""FID feature throughput of the Keras Inception port at several batch sizes.

    KERAS_BACKEND=jax python -m bench.bench_fid_batch --output bench/results/fid_batch_<device>.json

Chooses compute_fid.py's BATCH_SIZE: larger batches keep a GPU busier, at the
cost of memory (~4.5 GB at 250 and ~9.6 GB at 500 on a CPU, TensorFlow).
Each size is a new input shape, so its first call (compilation) is timed apart.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json
import time

import numpy as np

from bench.bench_speed import timed
from vaevar import cli, files

BATCH_SIZES = "50,100,250,500,1000"  # comma-separated
IMAGES = 4000  # images per timed round at each size
ROUNDS = 3  # best of
OUTPUT = None


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    import keras

    from vaevar.fid.network import build_inception

    model = build_inception((32, 32, 3))
    rng = np.random.default_rng(0)
    results = {
        "backend": keras.backend.backend(),
        "device": backend.device_description(),
        "images": args.images,
        "batches": {},
    }
    for batch_size in [int(size) for size in args.batch_sizes.split(",")]:
        x = rng.integers(0, 256, (batch_size, 32, 32, 3)).astype("float32")
        started = time.perf_counter()
        model.predict_on_batch(x)
        first_call = time.perf_counter() - started
        calls = max(2, args.images // batch_size)
        best = timed(lambda: [model.predict_on_batch(x) for _ in range(calls)], args.rounds) / calls
        results["batches"][batch_size] = {"images_per_s": batch_size / best, "first_call_s": first_call}
        print(batch_size, results["batches"][batch_size], flush=True)
    if args.output:
        files.save_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
