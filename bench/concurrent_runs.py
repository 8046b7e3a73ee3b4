"""Several trainings at once on one device: 1, 2 and 3 fast-trainer processes side by side (JAX backend),
their images/s summed. The paper averages 10 trainings; where one training leaves the GPU mostly idle
(bench/profile_step.py's busy fraction), more of them at once cost little more than one.

    KERAS_BACKEND=jax python -m bench.concurrent_runs --stage stage2 --images 2000      # CPU: a rehearsal
    KERAS_BACKEND=jax python -m bench.concurrent_runs --images 5000 --epochs 2           # a GPU

Each count starts its processes together (each runs bench.bench_fast_trainer --paths fast on STAGE:
compile and warm-up epoch, then EPOCHS timed epochs) and waits for them all, TIMEOUT seconds in all. Each
process may take MEMORY / count of the device's memory (XLA_PYTHON_CLIENT_MEM_FRACTION). The total is all
timed images over the span from the first timed epoch's start to the last one's end (not the sum of the
rates: the processes' compiles end at different times), with the share of that span when all ran at once.
MPS auto: NVIDIA's Multi-Process Service where the machine has it (nvidia-cuda-mps-control; kernels from
several processes then share the GPU at once), started before and stopped after; off: plain time slicing.
This process never starts JAX itself: a GPU client here would hold memory and sit outside MPS. Results:
bench/results/concurrent_runs_<device>.json, each count's total beside one process's.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os
import shutil
import subprocess
import sys
import tempfile
import time

from vaevar import cli, errors, files

STAGE = "stage1"  # stage1 | stage2
COUNTS = "1,2,3"  # processes at once, one measurement each
IMAGES = 5000  # training images (latent codes) per timed epoch, per process
EPOCHS = 2  # timed epochs per process, after its warm-up epoch
MEMORY = 0.9  # the device memory all processes of a count share
MPS = "auto"  # auto | off
TIMEOUT = 300  # seconds per count
OUTPUT = None  # default bench/results/concurrent_runs_<device>.json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_mps(scratch):
    """NVIDIA MPS for this measurement's processes, or None where the machine has none (or no GPU)."""
    if shutil.which("nvidia-cuda-mps-control") is None or not backend.jax_sees_gpu():
        return None
    env = dict(
        os.environ,
        CUDA_MPS_PIPE_DIRECTORY=os.path.join(scratch, "mps_pipe"),
        CUDA_MPS_LOG_DIRECTORY=os.path.join(scratch, "mps_log"),
    )
    for folder in (env["CUDA_MPS_PIPE_DIRECTORY"], env["CUDA_MPS_LOG_DIRECTORY"]):
        os.makedirs(folder, exist_ok=True)
    started = subprocess.run(["nvidia-cuda-mps-control", "-d"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        print(f"MPS did not start ({started.stderr.strip()[:200]}): plain time slicing")
        return None
    return env


def stop_mps(env):
    if env is not None:
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", env=env, capture_output=True, text=True)


def run_count(count, args, scratch, env):
    """`count` processes at once, TIMEOUT seconds in all: their results (None where one failed) and errors."""
    processes = []
    for index in range(count):
        out = os.path.join(scratch, f"count{count}_{index}.json")
        command = [
            sys.executable,
            "-m",
            "bench.bench_fast_trainer",
            "--paths",
            "fast",
            "--stages",
            args.stage,
        ]
        command += ["--images", str(args.images), "--epochs", str(args.epochs), "--matmul-size", "256"]
        process_env = dict(env, XLA_PYTHON_CLIENT_MEM_FRACTION=f"{args.memory / count:.3f}")
        log_path = os.path.join(scratch, f"count{count}_{index}.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command + ["--output", out], cwd=ROOT, env=process_env, stdout=log, stderr=log
            )
        processes.append((process, out, log_path))
    deadline = time.monotonic() + args.timeout
    outcomes, failures = [], []
    for index, (process, out, log_path) in enumerate(processes):
        try:
            code = process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = f"killed after {args.timeout} s"
        result = files.load_json(out) if code == 0 and os.path.exists(out) else {}
        outcomes.append(result or None)
        if not result:
            tail = open(log_path).read().strip().splitlines()[-1:] or ["no output"]
            failures.append(f"process {index}: exit {code}: {tail[0][:200]}")
    return outcomes, failures


def total_rate(outcomes, stage):
    """All timed images over the span of the timed windows, and the share of that span all windows share."""
    windows = [outcome[stage]["fast_timed_window"] for outcome in outcomes]
    images = sum(outcome[stage]["images_per_epoch"] * outcome["epochs"] for outcome in outcomes)
    span = max(end for _, end in windows) - min(start for start, _ in windows)
    together = max(0.0, min(end for _, end in windows) - max(start for start, _ in windows))
    return images / span, together / span


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    counts = [int(c) for c in str(args.counts).split(",")]
    if args.stage not in ("stage1", "stage2") or args.mps not in ("auto", "off") or min(counts) < 1:
        raise errors.VaevarError("--stage is stage1 or stage2, --mps auto or off, --counts positive integers")
    results = {"stage": args.stage, "images": args.images, "epochs": args.epochs, "counts": []}
    out = args.output
    with tempfile.TemporaryDirectory() as scratch:
        mps_env = start_mps(scratch) if args.mps == "auto" else None
        results["mps"] = mps_env is not None
        try:
            for count in counts:
                outcomes, failures = run_count(count, args, scratch, mps_env or dict(os.environ))
                entry = {"processes": count, "errors": failures}
                if not failures:
                    results.setdefault("device", outcomes[0]["device"])
                    entry["per_process"] = [outcome[args.stage]["fast_per_second"] for outcome in outcomes]
                    entry["total_per_second"], entry["all_at_once_share"] = total_rate(outcomes, args.stage)
                    single = [e for e in results["counts"] if e["processes"] == 1 and "total_per_second" in e]
                    if single:
                        entry["over_one_process"] = entry["total_per_second"] / single[0]["total_per_second"]
                results["counts"].append(entry)
                device = results.get("device", "unknown device")
                out = args.output or os.path.join(
                    ROOT, "bench", "results", f"concurrent_runs_{device.replace(' ', '_')}.json"
                )
                files.save_json(out, results)  # each count as it is measured
                print(
                    f"{count} at once{' (MPS)' if results['mps'] else ''}: "
                    + (
                        f"{entry['total_per_second']:.0f}/s in total, all running together "
                        f"{entry['all_at_once_share']:.0%} of the time"
                        if not failures
                        else "failed: " + "; ".join(failures)
                    )
                    + (
                        f", {entry['over_one_process']:.2f}x one process"
                        if "over_one_process" in entry
                        else ""
                    )
                )
        finally:
            stop_mps(mps_env)
    print(f"wrote {out}")


if __name__ == "__main__":
    errors.run_main(main)
