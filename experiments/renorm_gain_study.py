"""The paper's mechanism with a spread over seeds: does the renormalization gain shrink as the second stage
converges, and is it larger than the spread?

One first stage (RUN_DIR/stage1, trained by train_first_stage.py) and one second stage per seed in SEEDS,
each in RUN_DIR/seed_<s>/ (stage1 linked), keeping its model at KEEP_AT epochs and logging GEN-2's latent
Frechet distance to the encoded test codes, plain and renormalized, with the gate's ratio, every
LATENT_FD_EVERY epochs (train_second_stage.py --keep-models-at, --latent-fd-every). At the first and the
last kept model, generate.py --stage2-epoch renormalizes always (--renorm-threshold 0, so the effect is
measured whatever the gate says) and compute_fid.py --stage2-epoch scores GEN-2 plain and renormalized on
SAMPLES samples against SAMPLES test images (FID, precision, recall); the last seed-0 model has every kind
scored. Every step is the scripts' own command, and a rerun skips what is done. Run from the repository
root:

    python -m experiments.renorm_gain_study --run-dir runs/fashion_mnist_study --data-path DIR \
        --out results/fashion_mnist_renorm_gain

Writes OUT/study.json (every number), OUT/table.md (mean and std over seeds), OUT/gain.png (gain against
stage-2 epochs, a line per seed) and each seed's stage-2 log.csv.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os
import subprocess
import sys

import numpy as np

from vaevar import cli, errors, files, layout
from vaevar.run_folder import read_log
from vaevar.seeds import mean_sd

DATASET = "fashion_mnist"  # the first stage's data set
DATA_PATH = None  # its local files (else VAEVAR_DATA_DIR, else tensorflow-datasets)
RUN_DIR = "runs/fashion_mnist_study"  # holds stage1/ (trained first); seed_<s>/ are made here
OUT = "results/fashion_mnist_renorm_gain"  # where the study's numbers, table and figure go
SEEDS = "0,1,2"  # one second stage per seed
EPOCHS = 40  # each second stage's schedule
WIDTH = 512  # the second stage's dense width
LEARNING_RATE = 5e-4  # the second stage's (Adam)
LIMIT = None  # train the second stage on N of the encoded training images (default all)
KEEP_AT = "5,15,40"  # epochs whose models are kept: FID at the first and the last
LATENT_FD_EVERY = 5  # epochs between latent Frechet distances in log.csv
LATENT_FD_SAMPLES = 10000  # test codes (and GEN-2 codes) per latent distance
SAMPLES = 2000  # generated images per set, and test images in the FID reference
STEP = "all"  # all | train | score | report


def run(script, *argv):
    command = [sys.executable, script, *map(str, argv)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def seed_dir(args, seed):
    """RUN_DIR/seed_<s>, its stage1 a link to the shared first stage."""
    folder = os.path.join(args.run_dir, f"seed_{seed}")
    os.makedirs(folder, exist_ok=True)
    link = layout.RunPaths(folder).stage1.dir
    if not os.path.exists(link):
        os.symlink(os.path.abspath(layout.RunPaths(args.run_dir).stage1.dir), link)
    return folder


def data_flags(args, folder):
    return ["--dataset", args.dataset, "--run-dir", folder] + (
        ["--data-path", args.data_path] if args.data_path else []
    )


def train(args, seed):
    folder = seed_dir(args, seed)
    flags = data_flags(args, folder) + ["--epochs", args.epochs, "--width", args.width, "--seed", seed]
    flags += ["--learning-rate", args.learning_rate, "--keep-models-at", args.keep_at]
    flags += ["--latent-fd-every", args.latent_fd_every, "--latent-fd-samples", args.latent_fd_samples]
    flags += ["--verbose", 2, "--allow-cpu"] + (["--limit", args.limit] if args.limit else [])
    run("train_second_stage.py", *flags)


def score(args, seed, epoch, every_kind):
    folder = seed_dir(args, seed)
    paths = layout.RunPaths(folder, epoch)
    if not os.path.exists(paths.samples_summary):
        flags = ["--stage2-epoch", epoch, "--num-samples", args.samples, "--renorm-threshold", 0]
        run("generate.py", *data_flags(args, folder), *flags)
    kinds = layout.SAMPLE_SETS if every_kind else ("gen2", "gen2_renorm")
    sample_paths = ",".join(paths.sample(kind) for kind in kinds)
    flags = [
        "--stage2-epoch",
        epoch,
        "--num-samples",
        args.samples,
        "--no-train-reference",
        "--samples",
        sample_paths,
    ]
    run("compute_fid.py", *data_flags(args, folder), *flags)


def kl_flatness(rows):
    """max - min of KL over the last tenth of epochs, relative to its mean there: 'flat to within 1 %'."""
    tail = [float(r["kl"]) for r in rows[-max(1, len(rows) // 10) :]]
    return float((max(tail) - min(tail)) / np.mean(tail))


def mean_std(values, digits=2):
    summary = mean_sd(values)
    return f"{summary['mean']:.{digits}f} ± {summary['sd']:.{digits}f}"


def report(args, seeds, kept):
    os.makedirs(args.out, exist_ok=True)
    study = {"dataset": args.dataset, "seeds": seeds, "epochs": args.epochs, "kept": kept, "per_seed": {}}
    for seed in seeds:
        folder = seed_dir(args, seed)
        rows = read_log(layout.RunPaths(folder).stage2.log)
        measured = [r for r in rows if r.get("latent_fd_gen2")]
        entry = {
            "latent": [
                {
                    "epoch": int(r["epoch"]),
                    "fd_plain": float(r["latent_fd_gen2"]),
                    "fd_renorm": float(r["latent_fd_gen2_renorm"]),
                    "variance_ratio": float(r["variance_ratio"]),
                }
                for r in measured
            ],
            "kl_last_tenth_relative_range": kl_flatness(rows),
            "final": {k: float(rows[-1][k]) for k in ("loss", "mse", "gamma", "kl")},
            "fid": {},
        }
        for epoch in (kept[0], kept[-1]):
            fid = files.load_json(layout.RunPaths(folder, epoch).fid_results)
            entry["fid"][str(epoch)] = {
                kind: {k: fid[kind][k] for k in ("fid", "precision", "recall", "density", "coverage")}
                for kind in fid
            }
        files.copy_file(
            layout.RunPaths(folder).stage2.log, os.path.join(args.out, f"seed_{seed}_stage2_log.csv")
        )
        study["per_seed"][str(seed)] = entry
    stage1_log = read_log(layout.RunPaths(args.run_dir).stage1.log)
    mse = [float(r["mse"]) for r in stage1_log]
    study["stage1"] = {
        "epochs": len(stage1_log),
        "final": {k: float(stage1_log[-1][k]) for k in ("loss", "mse", "gamma", "kl")},
        "mse_change_last_epoch": (mse[-1] - mse[-2]) / mse[-2] if len(mse) > 1 else None,
    }
    files.save_json(os.path.join(args.out, "study.json"), study)
    files.save_text(os.path.join(args.out, "table.md"), table(study, seeds, kept))
    figure(study, seeds, kept, os.path.join(args.out, "gain.png"))
    print(open(os.path.join(args.out, "table.md")).read())


def table(study, seeds, kept):
    per_seed = [study["per_seed"][str(s)] for s in seeds]
    lines = [
        f"Mean ± std over {len(seeds)} second stages (seeds {', '.join(map(str, seeds))}) on one first stage.",
        "Gain = plain - renormalized (positive: renormalizing helped).",
        "",
        "| stage-2 epoch | latent FD plain | latent FD renormalized | latent FD gain | gate ratio |",
        "|---|---|---|---|---|",
    ]
    epochs = [m["epoch"] for m in per_seed[0]["latent"]]
    if any([m["epoch"] for m in s["latent"]] != epochs for s in per_seed):
        raise errors.VaevarError(
            "the seeds' logs measured different epochs: finish every seed's training first"
        )
    for i, epoch in enumerate(epochs):
        got = [s["latent"][i] for s in per_seed]
        lines.append(
            f"| {epoch} | {mean_std([g['fd_plain'] for g in got])} | {mean_std([g['fd_renorm'] for g in got])} | "
            f"{mean_std([g['fd_plain'] - g['fd_renorm'] for g in got])} | "
            f"{mean_std([g['variance_ratio'] for g in got])} |"
        )
    lines += [
        "",
        "| stage-2 epoch | GEN-2 FID plain | renormalized | gain | recall plain -> renormalized "
        "| precision plain -> renormalized |",
        "|---|---|---|---|---|---|",
    ]
    for epoch in (kept[0], kept[-1]):
        got = [s["fid"][str(epoch)] for s in per_seed]
        plain, renorm = [g["gen2"] for g in got], [g["gen2_renorm"] for g in got]
        lines.append(
            f"| {epoch} | {mean_std([p['fid'] for p in plain])} | {mean_std([r['fid'] for r in renorm])} | "
            f"{mean_std([p['fid'] - r['fid'] for p, r in zip(plain, renorm)])} | "
            f"{mean_std([p['recall'] for p in plain], 3)} -> {mean_std([r['recall'] for r in renorm], 3)} | "
            f"{mean_std([p['precision'] for p in plain], 3)} -> {mean_std([r['precision'] for r in renorm], 3)} |"
        )
    flat = [s["kl_last_tenth_relative_range"] for s in per_seed]
    change = study["stage1"]["mse_change_last_epoch"]
    lines += [
        "",
        f"Stage-2 KL over the last tenth of epochs varies by {min(flat):.1%} to {max(flat):.1%} of its mean "
        f"(converged: within 1 %). Stage 1: {study['stage1']['epochs']} epochs"
        + (f", MSE changed by {change:+.2%} in its last epoch." if change is not None else "."),
        "",
    ]
    return "\n".join(lines)


def figure(study, seeds, kept, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latent, fid) = plt.subplots(1, 2, figsize=(9, 3.4))
    for seed in seeds:
        entry = study["per_seed"][str(seed)]
        epochs = [m["epoch"] for m in entry["latent"]]
        latent.plot(
            epochs,
            [m["fd_plain"] - m["fd_renorm"] for m in entry["latent"]],
            marker=".",
            label=f"seed {seed}",
        )
        points = [(e, entry["fid"][str(e)]) for e in (kept[0], kept[-1])]
        fid.plot(
            [e for e, _ in points],
            [f["gen2"]["fid"] - f["gen2_renorm"]["fid"] for _, f in points],
            marker="o",
            label=f"seed {seed}",
        )
    for axis, title in ((latent, "latent Frechet distance gain"), (fid, "GEN-2 FID gain")):
        axis.axhline(0, color="gray", lw=0.8)
        axis.set_xlabel("stage-2 epoch")
        axis.set_title(f"{title} (plain - renormalized)", fontsize=9)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    kept = sorted(int(e) for e in args.keep_at.split(","))
    if not os.path.exists(layout.RunPaths(args.run_dir).stage1.model):
        raise errors.VaevarError(
            f"no first stage in {args.run_dir}: run train_first_stage.py --run-dir {args.run_dir}"
        )
    if args.step in ("all", "train"):
        for seed in seeds:
            train(args, seed)
    if args.step in ("all", "score"):
        for seed in seeds:
            for epoch in (kept[0], kept[-1]):
                score(args, seed, epoch, every_kind=(seed == seeds[0] and epoch == kept[-1]))
    if args.step in ("all", "report"):
        report(args, seeds, kept)


if __name__ == "__main__":
    errors.run_main(main)
