"""The whole reproduction for one data set: stage 1, stage 2, samples, FID,
and the variance-loss analysis, in order, in one run directory.

    python reproduce.py --dataset cifar10            # the paper's settings (days on one GPU)
    python reproduce.py --dataset mnist --quick      # a CPU smoke run (minutes)

Each step is the script of the same name with these flags passed on;
rerunning resumes the training steps where they stopped.
"""

import os
import time

import common

DATASET = "cifar10"
DATA_PATH = None
RUN_DIR = None             # default: runs/<dataset>
SEED = 0
QUICK = False
EPOCHS = None              # stage-1 epochs; default the data set's, see train_first_stage.py
STAGE2_EPOCHS = None       # stage-2 epochs; default the data set's (CIFAR-10 1400), see train_second_stage.py
LEARNING_RATE = None       # both trainings; default the data set's (CIFAR-10 1e-4)
MIXED_PRECISION = False    # float16 compute in both trainings; the loss stays float32
JIT_COMPILE = "auto"       # XLA in both trainings: auto | on | off
STEPS_PER_EXECUTION = 1    # training steps per call into the compiled step, both trainings
INCEPTION_WEIGHTS = None   # or $VAEVAR_INCEPTION_WEIGHTS; see compute_fid.py
SKIP_FID = False
SAMPLE_DTYPE = "float16"   # generate.py's sample arrays: float16 [0, 1], scored unrounded | uint8
NUM_SAMPLES = None         # samples per kind for generate/FID/analysis; default: theirs (10k, 1k with --quick)
VERBOSE = 2                # Keras fit verbosity: 1 progress bar, 2 one line per epoch


def main(argv=None):
    args = common.parse_constants(globals(), __doc__, argv)
    import compute_fid
    import data
    import generate
    import train_first_stage
    import train_second_stage
    import variance_loss

    data.check_name(args.dataset)
    run_dir = args.run_dir or os.path.join("runs", args.dataset)
    shared = ["--dataset", args.dataset, "--run-dir", run_dir, "--seed", str(args.seed)]
    if args.data_path:
        shared += ["--data-path", args.data_path]
    training_quick = ["--quick"] if args.quick else []
    training = training_quick + ["--jit-compile", str(args.jit_compile),
                                "--steps-per-execution", str(args.steps_per_execution)]
    if args.mixed_precision:
        training.append("--mixed-precision")
    stage1_epochs = ["--epochs", str(args.epochs)] if args.epochs else []
    stage2_epochs = ["--epochs", str(args.stage2_epochs)] if args.stage2_epochs else []
    if args.learning_rate:
        training += ["--learning-rate", str(args.learning_rate)]
    sampling = training_quick + (["--num-samples", str(args.num_samples)] if args.num_samples else [])
    generating = sampling + ["--sample-dtype", args.sample_dtype]
    verbose = ["--verbose", str(args.verbose)]
    steps = [
        ("stage 1", train_first_stage.main, shared + training + stage1_epochs + verbose),
        ("stage 2", train_second_stage.main, shared + training + stage2_epochs + verbose),
        ("samples", generate.main, shared + generating),
        ("variance analysis", variance_loss.main, ["--run-dirs", run_dir] + (["--data-path", args.data_path]
                                                                               if args.data_path else []) + sampling),
    ]
    if not args.skip_fid:
        fid_flags = ["--dataset", args.dataset, "--run-dir", run_dir] + sampling
        if args.data_path:
            fid_flags += ["--data-path", args.data_path]
        if args.inception_weights:
            fid_flags += ["--inception-weights", args.inception_weights]
        steps.append(("FID", compute_fid.main, fid_flags))
    for name, step, step_argv in steps:
        started = time.time()
        print(f"== {name}: {' '.join(step_argv)}", flush=True)
        step(step_argv)
        print(f"== {name} done in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    common.run_main(main)
