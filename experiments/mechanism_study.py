"""The mechanism study: is GEN-2's best latent scale above 1 while REC's and GEN-1's stay near 1 (the paper's
second-stage mismatch), or is every kind's best scale above 1 (a generic effect of more latent spread)?

One first stage (RUN_DIR/stage1, trained by train_first_stage.py) and a second stage per seed in
RUN_DIR/seed_<s>/ (renorm_gain_study's train step: models kept at KEEP_AT). For each seed and each kept
epoch (the last first), sweep_latent_scale.py scores GEN-2's codes times s over SCALES, the rule's point
(the authors' adjust, gate forced open: --renorm-threshold 0, so the rule's scale is measured whatever the
gate says) and the matched point (the encoded test codes' std); REC and GEN-1, which do not depend on the
second stage, once (seed_<first>, last epoch). generate.py and compute_fid.py then write each kept model's
fid.json for GEN-2 plain and renormalized (the sweep's own images: the statistics cache scores them once),
and aggregate_runs.py pairs the gains over seeds. Run from the repository root:

    python -m experiments.mechanism_study --run-dir runs/fashion_mnist_mechanism --data-path DIR \
        --out results/fashion_mnist_mechanism

Writes OUT/epoch_<E>/aggregate.{json,md}, OUT/sweeps/seed_<s>_epoch_<E>.{json,md,png}, OUT/study.json (the
best scales, rule and matched scales per seed and epoch, and the grid the sweeps ran, read from their
sweep.json), OUT/table.md and OUT/best_scale.png. A rerun skips what is done.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os

import numpy as np

from experiments.renorm_gain_study import data_flags, run, seed_dir, train
from vaevar import cli, errors, files, layout, seeds

DATASET = "fashion_mnist"  # the first stage's data set
DATA_PATH = None  # its local files (else VAEVAR_DATA_DIR, else tensorflow-datasets)
RUN_DIR = "runs/fashion_mnist_mechanism"  # holds stage1/ (trained first); seed_<s>/ are made here
OUT = "results/fashion_mnist_mechanism"  # where the study's numbers, tables and figures go
SEEDS = "0,1,2"  # one second stage per seed
EPOCHS = 30  # each second stage's schedule
WIDTH = 512  # the second stage's dense width
LEARNING_RATE = 5e-4  # the second stage's (Adam)
LIMIT = None  # train the second stage on N of the encoded training images (default all)
KEEP_AT = "5,30"  # epochs whose models are kept and swept
LATENT_FD_EVERY = 5  # epochs between latent Frechet distances in log.csv
LATENT_FD_SAMPLES = 10000  # test codes (and GEN-2 codes) per latent distance
SAMPLES = 1000  # images per sweep point, and test images in the reference
SCALES = "0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6"  # the sweep's grid
STEP = "all"  # all | train | sweep | report


def sweep(args, seed, epoch, kinds):
    """The sweep, then GEN-2's fid.json (plain and renormalized) for aggregate_runs.py."""
    folder = seed_dir(args, seed)
    paths = layout.RunPaths(folder, epoch)
    common = [*data_flags(args, folder), "--stage2-epoch", epoch, "--num-samples", args.samples]
    if not os.path.exists(paths.sweep_file("sweep.json")):
        run(
            "sweep_latent_scale.py",
            *common,
            "--kinds",
            kinds,
            "--scales",
            args.scales,
            "--renorm-threshold",
            0,
        )
    if not os.path.exists(paths.samples_summary):
        run("generate.py", *common, "--renorm-threshold", 0)
    samples = ",".join(paths.sample(kind) for kind in ("gen2", "gen2_renorm"))
    # eig: TTUR's distance from eigenvalues (equal to sqrtm within 1e-6, tests/test_fid_frechet.py), ~10x faster
    run("compute_fid.py", *common, "--no-train-reference", "--frechet-method", "eig", "--samples", samples)


def report(args, seed_list, kept):
    os.makedirs(os.path.join(args.out, "sweeps"), exist_ok=True)
    study = {"seeds": seed_list, "kept": kept, "samples": args.samples, "per_seed": {}}
    grids = []  # each sweep's own grid: a rerun skips done sweeps, so this run's --scales may not be what ran
    for epoch in kept:
        folders = [seed_dir(args, seed) for seed in seed_list]
        summary = seeds.summarise([seeds.load_scores(folder, epoch) for folder in folders])
        out = os.path.join(args.out, f"epoch_{epoch}")
        os.makedirs(out, exist_ok=True)
        files.save_json(os.path.join(out, "aggregate.json"), summary)
        for seed, folder in zip(seed_list, folders):
            paths = layout.RunPaths(folder, epoch)
            for name in ("sweep.json", "sweep.md", "sweep.png"):
                target = os.path.join(args.out, "sweeps", f"seed_{seed}_epoch_{epoch}.{name.split('.')[1]}")
                files.copy_file(paths.sweep_file(name), target)
            result = files.load_json(paths.sweep_file("sweep.json"))
            grids.append(result["scales"])
            study["per_seed"].setdefault(str(seed), {})[str(epoch)] = {
                "gate_ratio": result["gate_ratio"],
                "test_codes_mean_std": result["test_codes_mean_std"],
                "kinds": {
                    kind: {
                        "best_scale": entry["best_scale"],
                        "rule_scale": entry["rule"]["scale"],
                        "matched_scale": entry["matched_scale"],
                        "fid": {
                            "s1": _point(entry, 1.0)["fid"],
                            "rule": entry["rule"]["fid"],
                            "matched": entry["matched"]["fid"],
                            "best": min(p["fid"] for p in entry["points"]),
                        },
                        "kid": {
                            "s1": _point(entry, 1.0)["kid"],
                            "rule": entry["rule"]["kid"],
                            "matched": entry["matched"]["kid"],
                        },
                    }
                    for kind, entry in result["kinds"].items()
                },
            }
    # the grid the sweeps ran (their sweep.json), one if they share it, else each sweep's in order
    study["scales"] = grids[0] if all(grid == grids[0] for grid in grids) else grids
    files.save_json(os.path.join(args.out, "study.json"), study)
    write_table(study, os.path.join(args.out, "table.md"))
    plot(args, seed_list, kept, os.path.join(args.out, "best_scale.png"))


def _point(entry, scale):
    return min(entry["points"], key=lambda p: abs(p["scale"] - scale))


def write_table(study, path):
    lines = [
        "| stage-2 epoch | kind | best s by FID (per seed) | best s by KID | rule's s | matched s | "
        "FID s=1 / rule / matched / best (mean over seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for epoch in study["kept"]:
        for kind in layout.KINDS:
            rows = [
                s[str(epoch)]["kinds"][kind]
                for s in study["per_seed"].values()
                if kind in s.get(str(epoch), {}).get("kinds", {})
            ]
            if not rows:
                continue

            def listed(values):
                return ", ".join("-" if v is None else f"{v:.2f}" for v in values)

            fids = [np.mean([r["fid"][k] for r in rows]) for k in ("s1", "rule", "matched", "best")]
            lines.append(
                f"| {epoch} | {kind} | {listed(r['best_scale']['fid'] for r in rows)} | "
                f"{listed(r['best_scale']['kid'] for r in rows)} | {listed(r['rule_scale'] for r in rows)} | "
                f"{listed(r['matched_scale'] for r in rows)} | {' / '.join(f'{f:.1f}' for f in fids)} |"
            )
    files.save_text(path, "\n".join(lines) + "\n")


def plot(args, seed_list, kept, path):
    """FID and KID against s: REC and GEN-1 (once), GEN-2 per seed at each kept epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {kept[0]: ":", kept[-1]: "-"}
    for axis, measure in zip(axes, ("fid", "kid")):
        for epoch in kept:
            for i, seed in enumerate(seed_list):
                result = files.load_json(
                    layout.RunPaths(seed_dir(args, seed), epoch).sweep_file("sweep.json")
                )
                for kind, entry in result["kinds"].items():
                    if kind != "gen2" and (i or epoch != kept[-1]):
                        continue
                    points = sorted(entry["points"], key=lambda p: p["scale"])
                    colour = {"rec": "tab:blue", "gen1": "tab:orange", "gen2": "tab:green"}[kind]
                    label = kind if kind != "gen2" else f"gen2 epoch {epoch}" if i == 0 else None
                    axis.plot(
                        [p["scale"] for p in points],
                        [p[measure] for p in points],
                        styles[epoch] if kind == "gen2" else "-",
                        color=colour,
                        lw=1,
                        label=label,
                    )
        axis.axvline(1.0, color="gray", lw=0.6)
        axis.set_xlabel("latent scale s")
        axis.set_title(f"{measure.upper()} against s ({len(seed_list)} seeds of GEN-2)", fontsize=9)
        axis.legend(fontsize=8)
    figure.tight_layout()
    with files.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    seed_list = [int(s) for s in args.seeds.split(",")]
    kept = sorted(int(e) for e in args.keep_at.split(","))
    if not os.path.exists(layout.RunPaths(args.run_dir).stage1.model):
        raise errors.VaevarError(
            f"no first stage in {args.run_dir}: run train_first_stage.py --run-dir {args.run_dir}"
        )
    if args.step in ("all", "train"):
        for seed in seed_list:
            train(args, seed)
    if args.step in ("all", "sweep"):
        for epoch in reversed(kept):  # the converged end first
            for seed in seed_list:
                every = seed == seed_list[0] and epoch == kept[-1]
                sweep(args, seed, epoch, "rec,gen1,gen2" if every else "gen2")
    if args.step in ("all", "report"):
        report(args, seed_list, kept)


if __name__ == "__main__":
    errors.run_main(main)
