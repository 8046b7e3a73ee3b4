"""The fast trainer against model.fit, same model and batches, in one run (JAX backend):

    KERAS_BACKEND=jax python -m bench.bench_fast_trainer                          # CPU: small set
    KERAS_BACKEND=jax python -m bench.bench_fast_trainer --images 50000 --epochs 3 --matmul-size 8192   # a GPU

Stage 1 (the authors' network at the data set's shape) and stage 2 (the
dense VAE of the data set's width) each train EPOCHS epochs of IMAGES
synthetic images (latents) at batch 100 (BATCH_SIZE) on both paths, after one
compile/warm-up epoch each; reported as images/s, the ratio fast / fit, and
FLOP/s as a fraction of the measured float32 matrix product.
Results: bench/results/fast_trainer_<device>.json. PATHS / STAGES time a
part only, UNROLL and MIXED_DTYPE vary the fast path (bench/fast_variants.py
runs the variants, XLA flags included, in one command).
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json
import os
import time

import numpy as np

from vaevar import cli, errors, files

DATASET = "cifar10"  # image shape and stage-2 width of this data set
IMAGES = 2000  # training images (latent codes) per epoch
EPOCHS = 2  # timed epochs per path, after one warm-up epoch
MATMUL_SIZE = 2048  # 8192 on a GPU, to reach its matrix-multiply limit
OUTPUT = None  # default bench/results/fast_trainer_<device>.json
PATHS = "fit,fast"  # which trainers to time
STAGES = "stage1,stage2"  # which stages to time
UNROLL = 1  # fast path: training steps per iteration of the compiled loop
MIXED_DTYPE = ""  # "" float32 | bfloat16 | float16: the layers' compute type (variables stay float32)
BATCH_SIZE = 100  # the authors' 100; larger only to diagnose: a launch-bound step barely slows with it
COPIES = 1  # fast path: independent trainings (seeds) at once; the rate counts all their images
FLAT_UPDATE = False  # fast path: Adam over all parameters as one flattened buffer (the same arithmetic)
KERAS_TRANSPOSED_CONV = False  # Keras' transposed conv gradient (input-dilated), not models/transposed_conv's
EXPLICIT_PAD = False  # stride-2 convs padded explicitly, then "valid" (first_stage.EXPLICIT_STRIDE_PAD)
ONE_PASS_BN = False  # batch norm's backward as one reduction and one elementwise pass (the same forward)


def epochs_per_second(run_epoch, epochs, window=None):
    """Timed epochs per second after a warm-up one; window (a list): the timed span's wall-clock start and end
    appended, for runs timed side by side (bench/concurrent_runs.py)."""
    run_epoch(0)  # compile and warm up
    started, wall_start = time.perf_counter(), time.time()
    for epoch in range(1, epochs + 1):
        run_epoch(epoch)
    seconds = time.perf_counter() - started
    if window is not None:
        window.extend([wall_start, wall_start + seconds])
    return epochs / seconds


def fit_epochs(model, batches):
    from vaevar.training import FeedEpoch

    def run(epoch):
        model.fit(
            batches,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=0,
            callbacks=[FeedEpoch(batches)],
        )

    return run


def fast_epochs(models, batches, unroll=1, flat_update=False):
    """One epoch per call for MODELS (one, or several trained at once as vmapped copies, each on its own
    batches: the seeds' trainings of one run)."""
    import jax
    import jax.numpy as jnp

    from vaevar import fast_training

    for model in models:
        model.optimizer.build(model.trainable_variables)
    inputs = fast_training.EpochInputs(batches)
    run_epoch = fast_training.make_epoch_function(
        models[0], inputs, unroll, copies=len(models), flat_update=flat_update
    )
    state = [
        fast_training.model_state(models[0]) if len(models) == 1 else fast_training.stacked_state(models)
    ]

    def run(epoch):
        batches_of = [inputs.epoch(epoch * len(models) + copy) for copy in range(len(models))]
        rows, noise = (np.stack(parts) if len(models) > 1 else parts[0] for parts in zip(*batches_of))
        state[0], logs = run_epoch(state[0], inputs.source, jnp.asarray(rows), jnp.asarray(noise))
        jax.block_until_ready(logs["loss"])

    return run


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    import keras

    from bench.bench_speed import conv_dense_flops, matmul_peak
    from models.first_stage import build_first_stage
    from models.second_stage import build_second_stage
    from vaevar import data
    from vaevar.training import ImageBatches, LatentBatches, make_optimizer, precision_policy

    if keras.backend.backend() != "jax":
        raise errors.VaevarError("the fast trainer runs on JAX: set KERAS_BACKEND=jax")
    # the arithmetic-preserving variants are module switches, read when a model is built or traced
    from models import batch_norm, first_stage, transposed_conv

    transposed_conv.EXACT_GRADIENT = not args.keras_transposed_conv
    first_stage.EXPLICIT_STRIDE_PAD = args.explicit_pad
    batch_norm.ONE_PASS_BACKWARD = args.one_pass_bn
    entry = data.builtin_dataset(args.dataset)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images,) + entry.shape, dtype=np.uint8)
    mu = rng.normal(size=(args.images, 64)).astype(np.float32)
    sigma = np.full_like(mu, 0.3)
    peak = matmul_peak(args.matmul_size)
    results = {
        "device": backend.device_description(),
        "dataset": args.dataset,
        "images": args.images,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "matmul_flops_per_second": peak,
        "unroll": args.unroll,
        "copies": args.copies,
        "flat_update": args.flat_update,
        "keras_transposed_conv": args.keras_transposed_conv,
        "explicit_pad": args.explicit_pad,
        "one_pass_bn": args.one_pass_bn,
        "mixed_dtype": args.mixed_dtype or "float32",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    paths = {
        "fit": lambda models, batches: fit_epochs(models[0], batches),
        "fast": lambda models, batches: fast_epochs(models, batches, args.unroll, args.flat_update),
    }
    if args.images < args.batch_size:
        raise errors.VaevarError(f"--images {args.images} is less than one batch of {args.batch_size}")
    if args.copies > 1 and "fit" in args.paths.split(","):
        raise errors.VaevarError("--copies above 1 is a fast-path variant: pass --paths fast")
    stage_names = ("stage1", "stage2")
    for names, known in ((args.paths, paths), (args.stages, stage_names)):
        if not set(names.split(",")) <= set(known):
            raise errors.VaevarError(f"unknown name in {names!r}: use some of {', '.join(known)}")
    paths = {name: paths[name] for name in args.paths.split(",")}
    out = args.output or os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "results",
        f"fast_trainer_{results['device'].replace(' ', '_')}.json",
    )
    stages = {
        "stage1": (
            lambda seed: build_first_stage(entry.shape, seed=seed),
            lambda: ImageBatches(images, args.batch_size, 0),
            3,
        ),
        "stage2": (
            lambda seed: build_second_stage(64, entry.stage2_width, seed=seed),
            lambda: LatentBatches(mu, sigma, args.batch_size, 0),
            3,
        ),
    }
    for stage in args.stages.split(","):
        build, feeder, passes = stages[stage]
        rates, windows = {}, {}
        for path, make in paths.items():
            models = []
            for seed in range(args.copies):
                keras.utils.set_random_seed(seed)
                with precision_policy(bool(args.mixed_dtype), args.mixed_dtype or "float16"):
                    models.append(build(seed))
                models[-1].compile(optimizer=make_optimizer(1e-4))
            per_epoch = args.images // args.batch_size * args.batch_size * args.copies  # whole batches only
            window = []
            rates[path] = epochs_per_second(make(models, feeder()), args.epochs, window) * per_epoch
            windows[path] = window
            model = models[0]
        flops = conv_dense_flops(model) * passes  # forward + backward ~ 3 forward passes
        results[stage] = {f"{p}_per_second": r for p, r in rates.items()}
        results[stage].update({f"{p}_timed_window": w for p, w in windows.items()})  # wall clock, seconds
        results[stage]["images_per_epoch"] = per_epoch
        results[stage].update({f"{p}_fraction_of_matmul": r * flops / peak for p, r in rates.items()})
        if len(rates) == 2:
            results[stage]["fast_over_fit"] = rates["fast"] / rates["fit"]
        print(
            f"{stage}: "
            + ", ".join(
                f"{p} {r:.0f}/s ({results[stage][p + '_fraction_of_matmul']:.3f} of the matmul rate)"
                for p, r in rates.items()
            )
        )
        files.save_json(out, results)  # each stage as it is measured: a run cut short keeps what it has
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    errors.run_main(main)
