"""The whole reproduction for one data set: stage 1, stage 2, samples, the
variance-loss analysis and FID, in order, in one run directory.

    python reproduce.py --dataset cifar10            # the paper's settings (a GPU; docs/running.md)
    python reproduce.py --dataset mnist --quick      # a CPU smoke run (minutes)
    python reproduce.py --dataset images --data-path DIR --image-size 64   # your own images
    python reproduce.py --dataset cifar10 --time-budget 3600   # a cluster job: stop cleanly within the hour
    python reproduce.py --dataset cifar10 --seed 3   # another seed, in runs/cifar10_seed3 (SLURM arrays too)

Each step runs the script of the same name in its own process with these
flags passed on. A rerun skips the steps whose outputs are complete and
current (a finished stage, samples from the same models, an analysis of
those samples), says so, and resumes the rest where they stopped. With
--time-budget the run stops before the budget ends with exit code 75
(errors.EXIT_TIME_BUDGET): rerun the same command to continue.
"""

import dataclasses
import os
import subprocess
import sys
import time

from vaevar import cli, data, errors, files, layout, seeds
from vaevar.runtime import RuntimeSettings

DATASET = "cifar10"  # cifar10 | celeba | mnist | fashion_mnist | images (your own: a folder or .zip)
DATA_PATH = None  # local data file (else VAEVAR_DATA_DIR, else tensorflow-datasets)
IMAGE_SIZE = None  # images: the side every image is centre-cropped and resized to (16-256); default 64
TEST_FRACTION = 0.1  # images: the share held out as the test split, seeded; later steps reuse it
SPLIT_SEED = 0  # images: the seed of that split
RUN_DIR = None  # default: runs/<dataset>
SEED = None  # passed to every step; default $SLURM_ARRAY_TASK_ID (an array task), else 0; given: runs/<dataset>_seed<N>
QUICK = False  # the small CPU setting of every step (minutes)
EPOCHS = None  # stage-1 epochs; default the data set's, see train_first_stage.py
STAGE2_EPOCHS = None  # stage-2 epochs; default the data set's (CIFAR-10 1400), see train_second_stage.py
KEEP_MODELS_AT = ""  # stage-1 epochs after which a copy is kept too, comma-separated (stage1/kept/)
STAGE2_KEEP_MODELS_AT = ""  # likewise for stage 2 (e.g. 140,350,700 of CIFAR-10's 1400; stage2/kept/)
LEARNING_RATE = None  # both trainings; default the data set's (CIFAR-10 1e-4)
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS; see vaevar/fid/weights.py
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back in every step
SKIP_FID = False  # stop before compute_fid.py (no Inception weights needed)
SAMPLE_DTYPE = "float16"  # generate.py's sample arrays: float16 [0, 1], scored unrounded | uint8
NUM_SAMPLES = None  # samples per kind for generate/FID/analysis; default: theirs (10k, 1k with --quick)
# both trainings run so; its time budget is the whole command's (exit code 75: rerun the command)
RUNTIME = RuntimeSettings(verbose=2)  # trainer, precision, XLA, checkpoints, time budget, CPU guard


def folder_state(run_dir):
    """Every file under run_dir with its size and modification time: what a step wrote, if anything."""
    state = {}
    for folder, _, names in os.walk(run_dir):
        for name in names:
            stat = os.stat(os.path.join(folder, name))
            state[os.path.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return state


def run_step(name, script, argv, run_dir):
    """Run one script in its own process, as a user would; its one-line error is its own."""
    command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), script)] + argv
    started = time.time()
    print(f"== {name}: {script} {' '.join(argv)}", flush=True)
    before = folder_state(run_dir)
    code = subprocess.run(command).returncode
    if code == errors.EXIT_TIME_BUDGET:
        raise errors.TimeBudgetReached.during(name)
    if code != 0:
        if folder_state(run_dir) == before:  # refused before it began (e.g. days on a CPU)
            raise errors.VaevarError(
                f"{name} ({script}) stopped before it began, so there is nothing to resume: do what its "
                f"message above says (this command takes --quick and --allow-cpu too), then run it again"
            )
        raise errors.VaevarError(
            f"{name} ({script}) failed with exit code {code}: see its message above; "
            f"rerunning this command resumes"
        )
    print(f"== {name} done in {time.time() - started:.0f} s", flush=True)


def print_runtime_line(trainer):
    """The steps' backend, device, trainer and precision, found in a process of its own: a JAX GPU client in this
    long-lived parent would hold GPU memory that the steps need."""
    probe = (
        "from vaevar import backend; backend.choose(); from vaevar import fast_training; "
        f"print(backend.runtime_line('fast' if fast_training.choose({trainer!r}) else 'fit'))"
    )
    root = os.path.dirname(os.path.abspath(__file__))
    found = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True)
    if (
        found.returncode != 0
    ):  # e.g. --trainer fast without JAX: the same one-line error as the step would give
        raise errors.VaevarError(
            found.stderr.strip().splitlines()[-1].removeprefix("vaevar.errors.VaevarError: ")
        )
    print(found.stdout.strip(), flush=True)


def read_json(path):
    return files.load_json(path) if os.path.exists(path) else {}


def stage_complete(stage, epochs):
    """The weights' digest in the stage's completion record (config.json, written after its final model) when
    it completed `epochs`, else None."""
    config = read_json(stage.config)
    done = config.get("epochs") == epochs and "weights" in config and os.path.exists(stage.model)
    return config.get("weights") if done else None


def current_steps(run_dir, epochs, stage2_epochs, num_samples, seed, sample_dtype):
    """The steps whose outputs are complete and made from what the run holds now: {name: why}."""
    paths = layout.RunPaths(run_dir)
    stage1 = stage_complete(paths.stage1, epochs)
    if stage1 is None:
        return {}
    current = {"stage 1": f"{epochs} epochs done"}
    stage2 = stage_complete(paths.stage2, stage2_epochs)
    if stage2 is None or read_json(paths.stage2.state).get("stage1_weights") != stage1:
        return current
    current["stage 2"] = f"{stage2_epochs} epochs done on this first stage"
    summary = read_json(paths.samples_summary)
    if summary.get("models") != {"stage1": stage1, "stage2": stage2} or (
        summary.get("num_samples"),
        summary.get("seed"),
        summary.get("sample_dtype"),
    ) != (num_samples, seed, sample_dtype):
        return current
    current["samples"] = f"made from these models ({num_samples} per kind, seed {seed})"
    analysis = read_json(paths.analysis_summary)
    if analysis.get("samples_summary_sha256") == files.file_digest(paths.samples_summary):
        current["variance analysis"] = "of these samples"
    return current


def check_folder_flags(args, run_dir):
    """--dataset images: the image size to train at (the flag, the run's, else the default), checked, and the
    split flags the same as the run's first stage took (a finished stage 1 is skipped: its split stays);
    None for a built-in data set, which refuses --image-size."""
    wanted = data.requested_split(args.dataset, args.image_size, args.test_fraction, args.split_seed, run_dir)
    if wanted is None:
        return None
    recorded = data.recorded_source(run_dir)[1]
    if recorded is not None and dataclasses.replace(recorded, names_sha256=None, channels=None) != wanted:
        raise errors.VaevarError(
            f"{run_dir} split its images at size {recorded.image_size}, test fraction {recorded.test_fraction}, "
            f"seed {recorded.seed}: pass those, or another --run-dir for a new split"
        )
    return wanted.image_size


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    data.dataset(args.dataset)
    runtime = cli.settings_from(args, RuntimeSettings)
    seed = seeds.task_seed(args.seed, os.environ)  # None: the default seed 0 in runs/<dataset>
    run_dir = layout.RunPaths.of(args.dataset, args.run_dir, seed=seed).root
    args.seed = seed or 0
    if seed is not None:
        print(f"seed {seed}: {run_dir}", flush=True)
    image_size = check_folder_flags(args, run_dir)
    print_runtime_line(runtime.trainer)
    shared = ["--dataset", args.dataset, "--run-dir", run_dir, "--seed", str(args.seed)]
    data_path = ["--data-path", args.data_path] if args.data_path else []
    if not args.jpeg_round_trip:
        data_path.append("--no-jpeg-round-trip")
    training_quick = ["--quick"] if args.quick else []
    training = training_quick + (["--learning-rate", str(args.learning_rate)] if args.learning_rate else [])
    stage1_epochs = ["--epochs", str(args.epochs)] if args.epochs else []
    if args.dataset == data.IMAGES:  # the split is stage 1's: the later steps read it from the run
        stage1_epochs += ["--image-size", str(image_size), "--test-fraction", str(args.test_fraction)]
        stage1_epochs += ["--split-seed", str(args.split_seed)]
    stage2_epochs = ["--epochs", str(args.stage2_epochs)] if args.stage2_epochs else []
    stage1_epochs += ["--keep-models-at", str(args.keep_models_at)] if args.keep_models_at else []
    stage2_epochs += (
        ["--keep-models-at", str(args.stage2_keep_models_at)] if args.stage2_keep_models_at else []
    )
    sampling = training_quick + (["--num-samples", str(args.num_samples)] if args.num_samples else [])
    steps = [
        ("stage 1", "train_first_stage.py", shared + data_path + training + stage1_epochs),
        ("stage 2", "train_second_stage.py", shared + data_path + training + stage2_epochs),
        ("samples", "generate.py", shared + data_path + sampling + ["--sample-dtype", args.sample_dtype]),
        ("variance analysis", "variance_analysis.py", ["--run-dirs", run_dir] + data_path + sampling),
    ]
    if not args.skip_fid:
        weights = ["--inception-weights", args.inception_weights] if args.inception_weights else []
        steps.append(
            (
                "FID",
                "compute_fid.py",  # it skips by itself the sets fid.json holds for the same images
                ["--dataset", args.dataset, "--run-dir", run_dir] + sampling + data_path + weights,
            )
        )
    defaults = data.training_defaults(args.dataset, args.quick, image_size)
    # generate.py's default and --quick's
    num_samples = args.num_samples or (data.QUICK_SETTINGS["samples"] if args.quick else 10000)
    current = current_steps(
        run_dir,
        args.epochs or defaults["epochs"],
        args.stage2_epochs or defaults["stage2_epochs"],
        num_samples,
        args.seed,
        args.sample_dtype,
    )
    deadline = errors.deadline_of(runtime.time_budget)
    for name, script, step_argv in steps:
        if name in current:
            print(f"== {name}: skipped, {run_dir} holds it ({current[name]})", flush=True)
            continue
        left = 0  # no budget
        if deadline is not None:
            left = int(deadline - time.time())
            if left <= 0:
                raise errors.TimeBudgetReached.during(name)
        if script.startswith("train_"):  # the runtime settings, and what is left of the budget
            step_argv = step_argv + cli.flags_of(dataclasses.replace(runtime, time_budget=left))
        run_step(name, script, step_argv, run_dir)


if __name__ == "__main__":
    errors.run_main(main)
