"""Where a fast-trainer step's time goes, from one JAX profile of the authors' stage 1 (JAX backend):

    KERAS_BACKEND=jax python -m bench.profile_step --dataset mnist --base-filters 4   # CPU: the plumbing
    KERAS_BACKEND=jax python -m bench.profile_step --images 2000 --matmul-size 8192  # a GPU (~1 min)

Times one epoch of IMAGES / BATCH_SIZE steps after the compile, profiles the next, and reads the trace:
kernels per step; the device's busy fraction (kernel time with overlaps merged, over the span from the
first kernel's start to the last one's end); the 10 heaviest kernels (by XLA op) with their share of the
kernel time; the median kernel's time; and the achieved FLOP/s (forward + backward ~ 3 forward passes
of the convs and dense layers) over the matmul rate measured here at the same precision. A step that
takes about kernels x median kernel time is at its latency floor: only fewer kernels, or several runs at
once, make it faster. Results: bench/results/profile_step_<device>.json; the trace stays in TRACE_DIR.
On a GPU the kernels are the device's stream events; on a CPU, XLA's thunks (hlo_op in their args).
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import collections
import glob
import gzip
import json
import os
import statistics
import time

import numpy as np

from vaevar import cli, errors, files

DATASET = "cifar10"  # the image shape of this data set
IMAGES = 2000  # images per epoch: IMAGES / BATCH_SIZE steps are profiled
BATCH_SIZE = 100  # the authors'
BASE_FILTERS = 32  # the first stage's width (the authors' 32; smaller for a CPU rehearsal)
MATMUL_SIZE = 2048  # 8192 on a GPU
TRACE_DIR = None  # default: a fresh folder under bench/results/profile_trace
OUTPUT = None  # default bench/results/profile_step_<device>.json
TOP = 10  # heaviest kernels listed


def trace_file(trace_dir: str) -> str:
    """The Chrome-format trace that jax.profiler wrote under trace_dir (the newest)."""
    found = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    found = found or glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
    if not found:
        raise errors.VaevarError(f"no *.trace.json.gz under {trace_dir}: was the profile written there?")
    return max(found, key=os.path.getmtime)


def kernel_events(events: list[dict]) -> list[dict]:
    """Complete events ("ph": "X") that are device work: on a GPU process ("/device:GPU:n"), its stream
    threads ("Stream #..."; the derived "XLA Ops" lines would count each op twice); with no GPU process,
    the host's XLA thunks (events whose args name an hlo_op)."""
    process_names, thread_names = {}, {}
    for event in events:
        if event.get("ph") == "M" and event.get("name") == "process_name":
            process_names[event["pid"]] = event.get("args", {}).get("name", "")
        elif event.get("ph") == "M" and event.get("name") == "thread_name":
            thread_names[(event["pid"], event.get("tid"))] = event.get("args", {}).get("name", "")
    gpus = {pid for pid, name in process_names.items() if name.startswith("/device:GPU")}
    complete = [event for event in events if event.get("ph") == "X" and "dur" in event]
    if gpus:
        return [
            event
            for event in complete
            if event["pid"] in gpus
            and thread_names.get((event["pid"], event.get("tid")), "").startswith("Stream")
        ]
    return [event for event in complete if "hlo_op" in event.get("args", {})]


def merged_length(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def summarize_trace(path: str, steps: int, top: int = TOP) -> dict:
    """Kernels per step, busy fraction, median kernel time and the heaviest kernels of a profile of `steps`
    training steps (times in the trace's microseconds)."""
    with gzip.open(path, "rt") as f:
        loaded = json.load(f)
    events = loaded["traceEvents"] if isinstance(loaded, dict) else loaded
    kernels = kernel_events(events)
    if not kernels:
        raise errors.VaevarError(f"no kernels in {path}: the profile holds no device work")
    intervals = [(float(k["ts"]), float(k["ts"]) + float(k["dur"])) for k in kernels]
    span = max(end for _, end in intervals) - min(start for start, _ in intervals)
    busy = merged_length(intervals)
    kernel_time = sum(end - start for start, end in intervals)
    by_op = collections.Counter()
    counts = collections.Counter()
    for kernel in kernels:
        name = kernel.get("args", {}).get("hlo_op") or kernel["name"]
        by_op[name] += float(kernel["dur"])
        counts[name] += 1
    median = statistics.median(float(k["dur"]) for k in kernels)
    return {
        "trace": path,
        "steps": steps,
        "kernels": len(kernels),
        "kernels_per_step": len(kernels) / steps,
        "span_us": span,
        "busy_us": busy,
        "busy_fraction": busy / span if span > 0 else 1.0,
        "kernel_time_us": kernel_time,
        "median_kernel_us": median,
        "step_us_in_trace": span / steps,
        "kernels_times_median_us": len(kernels) / steps * median,
        "heaviest": [
            {"op": name, "share": seconds / kernel_time, "count": counts[name], "us": seconds}
            for name, seconds in by_op.most_common(top)
        ],
    }


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    import jax
    import keras

    from bench.bench_fast_trainer import fast_epochs
    from bench.bench_speed import conv_dense_flops, matmul_peak
    from models.first_stage import build_first_stage
    from vaevar import data
    from vaevar.training import ImageBatches, make_optimizer

    if keras.backend.backend() != "jax":
        raise errors.VaevarError("the profile is of the fast trainer, on JAX: set KERAS_BACKEND=jax")
    steps = args.images // args.batch_size
    if steps < 1:
        raise errors.VaevarError(f"--images {args.images} is less than one batch of {args.batch_size}")
    entry = data.builtin_dataset(args.dataset)
    images = np.random.default_rng(0).integers(0, 256, (args.images,) + entry.shape, dtype=np.uint8)
    keras.utils.set_random_seed(0)
    model = build_first_stage(entry.shape, base_filters=args.base_filters)
    model.compile(optimizer=make_optimizer(1e-4))
    run_epoch = fast_epochs([model], ImageBatches(images, args.batch_size, 0))
    run_epoch(0)  # compile and warm up
    started = time.perf_counter()
    run_epoch(1)
    step_seconds = (time.perf_counter() - started) / steps
    device = backend.device_description()
    results_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    trace_dir = args.trace_dir or os.path.join(results_dir, "profile_trace", time.strftime("%Y%m%d_%H%M%S"))
    with jax.profiler.trace(trace_dir):
        run_epoch(2)
    summary = summarize_trace(trace_file(trace_dir), steps, args.top)
    flops_per_step = conv_dense_flops(model) * 3 * args.batch_size
    peak = matmul_peak(args.matmul_size)
    summary.update(
        device=device,
        dataset=args.dataset,
        base_filters=args.base_filters,
        batch_size=args.batch_size,
        step_ms=step_seconds * 1e3,
        flops_per_second=flops_per_step / step_seconds,
        matmul_flops_per_second=peak,
        fraction_of_matmul=flops_per_step / step_seconds / peak,
        precision=str(jax.config.jax_default_matmul_precision or "default"),
    )
    out = args.output or os.path.join(results_dir, f"profile_step_{device.replace(' ', '_')}.json")
    files.save_json(out, summary)
    print(
        f"{device}: {summary['step_ms']:.2f} ms a step, {summary['kernels_per_step']:.0f} kernels a step, "
        f"busy {summary['busy_fraction']:.0%}, median kernel {summary['median_kernel_us']:.1f} us "
        f"(kernels x median {summary['kernels_times_median_us'] / 1e3:.2f} ms), "
        f"{summary['flops_per_second'] / 1e12:.3g} TFLOP/s = {summary['fraction_of_matmul']:.1%} of the matmul rate"
    )
    for kernel in summary["heaviest"]:
        print(f"  {kernel['share']:6.1%}  {kernel['count']:5d}x  {kernel['op']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    errors.run_main(main)
