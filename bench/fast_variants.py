"""The fast trainer's speed under variants that keep its arithmetic, one process each, in one command:

    KERAS_BACKEND=jax python -m bench.fast_variants                      # CPU: a small set, the plumbing
    KERAS_BACKEND=jax python -m bench.fast_variants --images 5000 --matmul-size 8192   # a GPU (~45 s a variant)

A stage-1 step of batch 100 takes 4.4 ms on an H100 for ~140 GFLOP that its
TF32 rate would do in 0.4 ms: most likely the step's many small kernels set
the pace. The variants attack that: XLA's command buffers (CUDA graphs)
over the loop body and the loop itself, command buffers off (do the
defaults matter?), and an unrolled loop (fewer iterations). bfloat16 changes
the arithmetic: it is timed too, but its FID effect must be measured before
it is ever used. batch400 is a diagnosis, not an option (the authors train
at batch 100): if the step is launch-bound, 4x the batch gives nearly 4x
the images per second. copies4 trains four models (seeds) at once, vmapped,
each at batch 100 on its own batches: if the step is launch-bound, the
paper's mean over several trainings costs little more than one.
keras_transposed_conv is the decoder's old kernel gradient (Keras' own,
input-dilated), which XLA's GPU rewriter does not give to cuDNN's
backward-filter kernel: its ratio is the new default's gain. explicit_pad
and one_pass_bn keep the arithmetic and cut memory passes (an explicit
pad XLA may fuse; batch norm's backward in one reduction). Each
variant runs bench.bench_fast_trainer (fast path only)
in its own process, because XLA reads its flags once per process; a variant
that fails (an unknown flag, a crash) is recorded with its error and the
others go on. Results: bench/results/fast_variants_<device>.json, each rate
beside the default's.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import json
import os
import subprocess
import sys
import tempfile

from vaevar import cli, errors, files

IMAGES = 1000  # training images (latent codes) per timed epoch
EPOCHS = 2  # timed epochs, after one warm-up epoch
MATMUL_SIZE = 2048  # 8192 on a GPU
STAGES = "stage1,stage2"
VARIANTS = (  # names in VARIANT_SETTINGS
    "default,graphs_conv_while,graphs_concurrent,graphs_with_loops,no_graphs,flat_adam,unroll2,unroll4,"
    "bfloat16,batch400,copies4,keras_transposed_conv,explicit_pad,one_pass_bn"
)
TIMEOUT = 240  # seconds per variant
OUTPUT = None  # default bench/results/fast_variants_<device>.json

COMMAND_BUFFERS = "FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN"
# name -> (XLA_FLAGS added, bench_fast_trainer flags)
VARIANT_SETTINGS = {
    "default": ("", []),
    "graphs_with_loops": (
        f"--xla_gpu_enable_command_buffer={COMMAND_BUFFERS},WHILE,CONDITIONAL "
        "--xla_gpu_graph_min_graph_size=1",
        [],
    ),
    # the defaults plus convolutions and the loop itself in the graphs, however small
    "graphs_conv_while": (
        "--xla_gpu_enable_command_buffer=+CONVOLUTION,+WHILE --xla_gpu_graph_min_graph_size=1",
        [],
    ),
    "graphs_concurrent": (
        "--xla_gpu_enable_command_buffer=+CONVOLUTION,+WHILE --xla_gpu_graph_min_graph_size=1 "
        "--xla_gpu_command_buffer_scheduling_mode=CONCURRENT_REGIONS",
        [],
    ),
    "no_graphs": ("--xla_gpu_enable_command_buffer=", []),
    "flat_adam": ("", ["--flat-update"]),  # one Adam update over all parameters flattened: fewer kernels
    "unroll2": ("", ["--unroll", "2"]),
    "unroll4": ("", ["--unroll", "4"]),
    "bfloat16": ("", ["--mixed-dtype", "bfloat16"]),
    "batch400": ("", ["--batch-size", "400"]),  # a diagnosis, not the protocol: ~4x the rate if launch-bound
    "copies4": ("", ["--copies", "4"]),  # four trainings (seeds) at once: their images/s summed
    # the default before models/transposed_conv.py: Keras' kernel gradient, a convolution with input dilation
    "keras_transposed_conv": ("", ["--keras-transposed-conv"]),
    "explicit_pad": ("", ["--explicit-pad"]),  # the stride-2 convs' pad explicit: fusable with what precedes
    "one_pass_bn": ("", ["--one-pass-bn"]),  # batch norm's backward: one reduction, one elementwise pass
}


def run_variant(name, args, scratch):
    flags, extra = VARIANT_SETTINGS[name]
    env = dict(os.environ, XLA_FLAGS=" ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), flags])))
    out = os.path.join(scratch, f"{name}.json")
    command = [
        sys.executable,
        "-m",
        "bench.bench_fast_trainer",
        "--paths",
        "fast",
        "--stages",
        args.stages,
        "--images",
        str(args.images),
        "--epochs",
        str(args.epochs),
        "--matmul-size",
        str(args.matmul_size),
        "--output",
        out,
    ] + extra
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        error = (
            None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["exit code"])[-1][:300]
        )
    except subprocess.TimeoutExpired:
        error = f"over {args.timeout} s"
    result = json.load(open(out)) if os.path.exists(out) else {}
    result.update(variant=name, xla_flags_added=flags, flags=extra, error=error)
    return result


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANT_SETTINGS)
    if unknown:
        raise errors.VaevarError(
            f"unknown --variants {', '.join(sorted(unknown))}: use {', '.join(VARIANT_SETTINGS)}"
        )
    results = {
        "device": backend.device_description(),
        "images": args.images,
        "epochs": args.epochs,
        "variants": [],
    }
    out = args.output or os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "results",
        f"fast_variants_{results['device'].replace(' ', '_')}.json",
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            result = run_variant(name, args, scratch)
            results["variants"].append(result)
            default = results["variants"][0]
            for stage in args.stages.split(","):
                rate = result.get(stage, {}).get("fast_per_second")
                base = default.get(stage, {}).get("fast_per_second")
                if rate and base:
                    result[stage]["over_default"] = rate / base
                print(
                    f"{name} {stage}: "
                    + (
                        f"{rate:.0f}/s" + (f", {rate / base:.2f}x the first variant" if base else "")
                        if rate
                        else f"failed: {result['error']}"
                    )
                )
            files.save_json(out, results)  # each variant as it is measured
    print(f"wrote {out}")


if __name__ == "__main__":
    errors.run_main(main)
