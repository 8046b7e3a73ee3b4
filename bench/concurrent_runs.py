"""Several trainings at once on one device: 1, 2 and 3 fast-trainer processes side by side (JAX backend),
their images/s summed. The paper averages 10 trainings; where one training leaves the GPU mostly idle
(bench/profile_step.py's busy fraction), more of them at once cost little more than one.

    KERAS_BACKEND=jax python -m bench.concurrent_runs --stage stage2 --images 2000      # CPU: a rehearsal
    KERAS_BACKEND=jax python -m bench.concurrent_runs --images 5000 --epochs 2           # a GPU

Each count starts its processes together (each runs bench.bench_fast_trainer --paths fast on STAGE:
compile and warm-up epoch, then EPOCHS timed epochs) and waits for them all. Each process may take
MEMORY / count of the device's memory (XLA_PYTHON_CLIENT_MEM_FRACTION). MPS auto: NVIDIA's Multi-Process
Service where the machine has it (nvidia-cuda-mps-control; its kernels from several processes then share
the GPU at once), started before and stopped after; off: plain time slicing. Results:
bench/results/concurrent_runs_<device>.json, each count's total beside one process's.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os
import shutil
import subprocess
import sys
import tempfile

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
    if shutil.which("nvidia-cuda-mps-control") is None or not backend.device_description().startswith("GPU"):
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
    """`count` processes at once: each one's images/s (None where it failed) and errors."""
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
        log = open(os.path.join(scratch, f"count{count}_{index}.log"), "w")
        processes.append(
            (
                subprocess.Popen(
                    command + ["--output", out], cwd=ROOT, env=process_env, stdout=log, stderr=log
                ),
                out,
                log,
            )
        )
    rates, failures = [], []
    for process, out, log in processes:
        try:
            code = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = f"over {args.timeout} s"
        log.close()
        rate = (
            files.load_json(out).get(args.stage, {}).get("fast_per_second") if os.path.exists(out) else None
        )
        rates.append(rate)
        if code != 0 or rate is None:
            tail = open(log.name).read().strip().splitlines()[-1:] or ["no output"]
            failures.append(f"process {len(rates) - 1}: exit {code}: {tail[0][:200]}")
    return rates, failures


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    counts = [int(c) for c in str(args.counts).split(",")]
    if args.stage not in ("stage1", "stage2") or args.mps not in ("auto", "off") or min(counts) < 1:
        raise errors.VaevarError("--stage is stage1 or stage2, --mps auto or off, --counts positive integers")
    device = backend.device_description()
    results = {
        "device": device,
        "stage": args.stage,
        "images": args.images,
        "epochs": args.epochs,
        "counts": [],
    }
    out = args.output or os.path.join(
        ROOT, "bench", "results", f"concurrent_runs_{device.replace(' ', '_')}.json"
    )
    with tempfile.TemporaryDirectory() as scratch:
        mps_env = start_mps(scratch) if args.mps == "auto" else None
        results["mps"] = mps_env is not None
        try:
            for count in counts:
                rates, failures = run_count(count, args, scratch, mps_env or dict(os.environ))
                total = sum(rates) if None not in rates else None
                entry = {
                    "processes": count,
                    "per_process": rates,
                    "total_per_second": total,
                    "errors": failures,
                }
                single = results["counts"][0]["total_per_second"] if results["counts"] else None
                if total and single and results["counts"][0]["processes"] == 1:
                    entry["over_one_process"] = total / single
                results["counts"].append(entry)
                files.save_json(out, results)  # each count as it is measured
                print(
                    f"{count} at once{' (MPS)' if results['mps'] else ''}: "
                    + (f"{total:.0f}/s in total" if total else "failed: " + "; ".join(failures))
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
