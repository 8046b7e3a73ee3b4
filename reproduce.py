"""The whole reproduction for one data set: stage 1, stage 2, samples, FID,
and the variance-loss analysis, in order, in one run directory.

    python reproduce.py --dataset cifar10            # the paper's settings (a GPU: ~1 h of H100 training)
    python reproduce.py --dataset mnist --quick      # a CPU smoke run (minutes)

Each step runs the script of the same name in its own process with these
flags passed on; rerunning resumes the training steps where they stopped.
"""

import os
import subprocess
import sys
import time

import common
import data

DATASET = "cifar10"       # cifar10 | celeba | mnist | fashion_mnist
DATA_PATH = None          # local data file (else VAEVAR_DATA_DIR, else tensorflow-datasets)
RUN_DIR = None             # default: runs/<dataset>
SEED = 0                  # passed to every step
QUICK = False             # the small CPU setting of every step (minutes)
EPOCHS = None              # stage-1 epochs; default the data set's, see train_first_stage.py
STAGE2_EPOCHS = None       # stage-2 epochs; default the data set's (CIFAR-10 1400), see train_second_stage.py
LEARNING_RATE = None       # both trainings; default the data set's (CIFAR-10 1e-4)
MIXED_PRECISION = False    # mixed compute in both trainings; the loss stays float32
MIXED_DTYPE = "float16"    # float16 | bfloat16
JIT_COMPILE = "auto"       # XLA in both trainings: auto | on | off
STEPS_PER_EXECUTION = 1    # training steps per call into the compiled step, both trainings
TRAINER = "auto"           # both trainings: auto (fast on JAX with a GPU, else fit) | fit | fast
INCEPTION_WEIGHTS = None   # or $VAEVAR_INCEPTION_WEIGHTS; see fid/weights.py
JPEG_ROUND_TRIP = True     # CIFAR-10 from a lossless source: JPEG quality 75 and back in every step
SKIP_FID = False          # stop before compute_fid.py (no Inception weights needed)
SAMPLE_DTYPE = "float16"   # generate.py's sample arrays: float16 [0, 1], scored unrounded | uint8
NUM_SAMPLES = None         # samples per kind for generate/FID/analysis; default: theirs (10k, 1k with --quick)
VERBOSE = 2                # Keras fit verbosity: 1 progress bar, 2 one line per epoch


def run_step(name, script, argv):
    """Run one script in its own process, as a user would; its one-line error is its own."""
    command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), script)] + argv
    started = time.time()
    print(f"== {name}: {script} {' '.join(argv)}", flush=True)
    code = subprocess.run(command).returncode
    if code != 0:
        raise common.VaevarError(f"{name} ({script}) failed with exit code {code}: see its message above; "
                                 f"rerunning this command resumes")
    print(f"== {name} done in {time.time() - started:.0f} s", flush=True)


def main(argv=None):
    args = common.parse_constants(globals(), __doc__, argv)
    data.dataset(args.dataset)
    run_dir = args.run_dir or os.path.join("runs", args.dataset)
    shared = ["--dataset", args.dataset, "--run-dir", run_dir, "--seed", str(args.seed)]
    data_path = ["--data-path", args.data_path] if args.data_path else []
    if not args.jpeg_round_trip:
        data_path.append("--no-jpeg-round-trip")
    training_quick = ["--quick"] if args.quick else []
    training = training_quick + ["--jit-compile", str(args.jit_compile),
                                "--steps-per-execution", str(args.steps_per_execution), "--trainer", args.trainer]
    if args.mixed_precision:
        training += ["--mixed-precision", "--mixed-dtype", args.mixed_dtype]
    stage1_epochs = ["--epochs", str(args.epochs)] if args.epochs else []
    stage2_epochs = ["--epochs", str(args.stage2_epochs)] if args.stage2_epochs else []
    if args.learning_rate:
        training += ["--learning-rate", str(args.learning_rate)]
    sampling = training_quick + (["--num-samples", str(args.num_samples)] if args.num_samples else [])
    verbose = ["--verbose", str(args.verbose)]
    steps = [
        ("stage 1", "train_first_stage.py", shared + data_path + training + stage1_epochs + verbose),
        ("stage 2", "train_second_stage.py", shared + data_path + training + stage2_epochs + verbose),
        ("samples", "generate.py", shared + data_path + sampling + ["--sample-dtype", args.sample_dtype]),
        ("variance analysis", "variance_loss.py", ["--run-dirs", run_dir] + data_path + sampling),
    ]
    if not args.skip_fid:
        weights = ["--inception-weights", args.inception_weights] if args.inception_weights else []
        steps.append(("FID", "compute_fid.py",
                      ["--dataset", args.dataset, "--run-dir", run_dir] + sampling + data_path + weights))
    for name, script, step_argv in steps:
        run_step(name, script, step_argv)


if __name__ == "__main__":
    common.run_main(main)
