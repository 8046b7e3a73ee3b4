"""Throughput benchmarks: stage-1 / stage-2 training, generation, FID features.

    python -m bench.bench_speed                  # TensorFlow backend (default)
    KERAS_BACKEND=jax python -m bench.bench_speed

Reports images/s and achieved FLOP/s as a ratio to this machine's measured
float32 matrix-multiply throughput (same backend, same run). On TensorFlow it
also times model.fit with XLA forced on and a plain tf.GradientTape loop of
the same model against model.fit, and the Keras Inception port against the
frozen graph on the same batch (a graph in the 2015 format with random
weights when the real one is absent; the cost is the same).
Results: bench/results/<backend>_<device>[_mixed].json.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json
import os
import platform
import time

import numpy as np

from vaevar import cli, files

DATASET = "cifar10"  # image shape of this data set
BATCH_SIZE = 100
STEPS = 20  # training steps per timed call
ROUNDS = 5  # interleaved timing rounds of the stage-1 variants
FID_IMAGES = 64
FID_BATCH = 32
MATMUL_SIZE = 2048  # 8192 on a GPU, to reach its matrix-multiply limit
STEPS_PER_EXECUTION = 10  # training steps per compiled call in the fit_steps_per_execution variant
MIXED_PRECISION = False
OUTPUT = None


def conv_dense_flops(model):
    """Forward multiply-adds x 2 per example of Conv2D, Conv2DTranspose and Dense layers."""
    import keras
    from keras import layers

    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.Model):
            continue
        if isinstance(layer, layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, layers.Conv2D):
            _, h, w, _ = layer.output.shape
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def interleaved_best(functions, rounds):
    """name -> best seconds of `rounds` calls, one call of each function per round, after a warm-up call each."""
    for function in functions.values():
        function()
    best = {name: float("inf") for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def timed(function, repeats):
    """Best of `repeats` calls after a warm-up: the least disturbed by other load."""
    return interleaved_best({"call": function}, repeats)["call"]


def gradient_tape_epoch(model, x, batch_size):
    """A plain tf.GradientTape + tf.function training loop over x, the reference for model.fit's overhead."""
    import tensorflow as tf

    from vaevar.training import make_optimizer

    optimizer = make_optimizer(1e-4)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=batch, y_pred=model(batch, training=True), training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    batches = [tf.constant(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]

    def epoch():
        for batch in batches:
            loss = step(batch)
        return float(loss)

    return epoch


def matmul_peak(size):
    import keras
    from keras import ops

    # The compute dtype: float16 under mixed precision, where the limit is the half-precision one.
    dtype = keras.mixed_precision.global_policy().compute_dtype
    a = keras.random.normal((size, size), dtype=dtype)
    b = keras.random.normal((size, size), dtype=dtype)
    seconds = timed(lambda: ops.convert_to_numpy(ops.matmul(a, b)[0, 0]), 10)
    return 2 * size**3 / seconds


def stage1_speed(args, image_shape, peak, rng):
    """Stage-1 training: model.fit and its variants, timed in interleaved rounds (best of ROUNDS each), so a
    slow spell of the machine hits them all alike. Returns (results, the fit model)."""
    import keras

    from models.first_stage import build_first_stage
    from vaevar.training import ImageBatches, make_optimizer

    backend_name = keras.backend.backend()
    x = rng.random((args.batch_size * args.steps,) + image_shape).astype("float32")
    uint8_images = (x * 255).astype(np.uint8)
    model = build_first_stage(image_shape)
    model.compile(optimizer=make_optimizer(1e-4))  # jit_compile="auto", as the training scripts
    variants = {
        "fit": lambda: model.fit(x, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False),
        "fit_uint8_feeder": lambda: model.fit(
            ImageBatches(uint8_images, args.batch_size, seed=0), epochs=1, verbose=0
        ),
    }
    # Several steps per compiled call: less Python between steps, which matters where a step is short (GPU).
    multi_step_model = build_first_stage(image_shape)
    multi_step_model.compile(optimizer=make_optimizer(1e-4), steps_per_execution=args.steps_per_execution)
    variants["fit_steps_per_execution"] = lambda: multi_step_model.fit(
        x, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False
    )
    if backend_name == "tensorflow":
        # Keras' "auto" leaves XLA off on a CPU-only TensorFlow machine; time it on too.
        xla_model = build_first_stage(image_shape)
        xla_model.compile(optimizer=make_optimizer(1e-4), jit_compile=True)
        variants["fit_xla"] = lambda: xla_model.fit(
            x, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False
        )
        variants["gradient_tape"] = gradient_tape_epoch(build_first_stage(image_shape), x, args.batch_size)
    seconds = interleaved_best(variants, args.rounds)
    per_step = {name: value / args.steps for name, value in seconds.items()}
    fit_seconds = per_step["fit"]
    train_flops = 3 * conv_dense_flops(model)  # forward + backward ~ 3x forward
    results = {
        "stage1_fit": {
            "images_per_s": args.batch_size / fit_seconds,
            "flops_per_s": train_flops * args.batch_size / fit_seconds,
            "ratio_to_matmul_peak": train_flops * args.batch_size / fit_seconds / peak,
            "forward_flops_per_image": train_flops / 3,
            "images_per_s_with_uint8_feeder": args.batch_size / per_step["fit_uint8_feeder"],
            "images_per_s_with_steps_per_execution": (args.batch_size / per_step["fit_steps_per_execution"]),
            "steps_per_execution": args.steps_per_execution,
            "rounds": args.rounds,
        }
    }
    if backend_name == "tensorflow":
        results["stage1_fit_xla"] = {
            "images_per_s": args.batch_size / per_step["fit_xla"],
            "speed_ratio_to_fit_without_xla": fit_seconds / per_step["fit_xla"],
        }
        results["stage1_gradient_tape"] = {
            "images_per_s": args.batch_size / per_step["gradient_tape"],
            "fit_speed_ratio": per_step["gradient_tape"] / fit_seconds,
        }
    return results, model


def stage2_speed(args, peak, rng):
    from models.second_stage import build_second_stage
    from vaevar.training import make_optimizer

    second = build_second_stage(64, 2048)
    second.compile(optimizer=make_optimizer(1e-4))
    z = rng.standard_normal((args.batch_size * args.steps * 5, 64)).astype("float32")
    seconds = timed(
        lambda: second.fit(z, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False), 3
    ) / (args.steps * 5)
    flops = 3 * conv_dense_flops(second)
    return {
        "latents_per_s": args.batch_size / seconds,
        "ratio_to_matmul_peak": flops * args.batch_size / seconds / peak,
    }


def generation_speed(decoder, peak, rng):
    """The decoder's forward pass on 1,000 codes."""
    u = rng.standard_normal((1000, 64)).astype("float32")
    seconds = timed(lambda: decoder.predict(u, batch_size=500, verbose=0), 3)
    flops = conv_dense_flops(decoder)
    return {"images_per_s": 1000 / seconds, "ratio_to_matmul_peak": flops * 1000 / seconds / peak}


def fid_features_speed(args, image_shape, peak, rng):
    """The Keras Inception port as compute_fid.py calls it, and on TensorFlow the frozen graph beside it."""
    import keras

    from vaevar.fid.network import build_inception

    inception = build_inception(image_shape)
    images = rng.integers(0, 256, (args.fid_images,) + image_shape).astype("float32")

    def port():
        for i in range(0, args.fid_images, args.fid_batch):
            inception.predict_on_batch(images[i : i + args.fid_batch])

    seconds = timed(port, 3)
    flops = conv_dense_flops(inception)
    results = {
        "fid_features_port": {
            "images_per_s": args.fid_images / seconds,
            "ratio_to_matmul_peak": flops * args.fid_images / seconds / peak,
            "forward_flops_per_image": flops,
        }
    }
    if keras.backend.backend() == "tensorflow":
        from vaevar.fid import graph as inception_graph

        extract = inception_graph.frozen_graph_extractor(inception_graph.random_graph_def(), args.fid_batch)
        seconds = timed(lambda: extract(images), 3)
        results["fid_features_frozen_graph"] = {"images_per_s": args.fid_images / seconds}
        results["fid_features_port"]["speed_ratio_to_frozen_graph"] = (
            results["fid_features_port"]["images_per_s"]
            / results["fid_features_frozen_graph"]["images_per_s"]
        )
    return results


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    from vaevar import data

    image_shape = data.builtin_dataset(args.dataset).shape
    import keras

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    backend_name = keras.backend.backend()
    device = backend.device_description()
    results = {
        "backend": backend_name,
        "device": device,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "batch_size": args.batch_size,
        "dataset": args.dataset,
        "mixed_precision": args.mixed_precision,
    }
    peak = matmul_peak(args.matmul_size)
    results["matmul_flops_per_s"] = peak
    results["matmul_dtype"] = keras.mixed_precision.global_policy().compute_dtype
    rng = np.random.default_rng(0)
    stage1, model = stage1_speed(args, image_shape, peak, rng)
    results.update(stage1)
    results["stage2_fit"] = stage2_speed(args, peak, rng)
    results["generation"] = generation_speed(model.decoder, peak, rng)
    results.update(fid_features_speed(args, image_shape, peak, rng))

    out = args.output or os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "results",
        f"{backend_name}_{device.replace(' ', '_').replace(',', '')}"
        f"{'_mixed' if args.mixed_precision else ''}.json",
    )
    files.save_json(out, results)
    print(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
