"""The mechanism study over first-stage seeds: is GEN-2's gain from a larger latent scale the second stage's
variance loss, or the generic effect that REC and GEN-1 show too? Each seed f in SEEDS is a whole run in
RUN_DIR/first_<f>/: a first stage trained to convergence (kept after EARLY epochs too), a second stage on the
final first stage and one on the kept copy (train_second_stage.py --stage1-epoch EARLY), both seeded f. For
each run and view (the converged first stage, and the early copy with its own second stage),
sweep_latent_scale.py --scales auto sweeps REC, GEN-1 and GEN-2 until each FID minimum is bracketed, with
the noise and the pixel variance; aggregate_runs.py --split then pairs GEN-2's gain over the seeds. Every
step is the scripts' own command, and a rerun skips what is done (a training stopped by TIME_BUDGET, exit
code 75, resumes). Run from the repository root:

    python -m experiments.first_stage_seeds_study --run-dir runs/fashion_mnist_seeds --data-path DIR \
        --out results/fashion_mnist_first_stage_seeds

Writes OUT/<view>/split.{json,md} (view: converged, early), OUT/sweeps/first_<f>_<view>.{json,md,png},
OUT/first_<f>_stage1_log.csv, OUT/first_<f>_<view>_stage2_log.csv, OUT/study.json (the convergence rule per
first stage, and per view, seed and kind the best scale, the FID there and at s = 1 with the noise, where the
pixel variance reaches the data's) and OUT/table.md. The report reads those copies, refreshed from the run
folders that are there: with the runs gone, `--step report` remakes every number from the committed files.
With `--views early` alone a first stage is trained to EARLY epochs only (the converged view resumes it);
such a run's log must be the first epochs of the kept log (the same run trained again), which then stays.
Another CPU rounds otherwise and trains another run: with `--early-trained-again` that run is the early
view's own first stage, its log kept as OUT/first_<f>_early_stage1_log.csv and compared with the kept run's.
`--step keep` copies a share of the seeds' files into OUT (a run folder may not outlive its machine); the
report then reads them with the rest.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os
import subprocess
import sys

import numpy as np

from vaevar import cli, errors, files, layout
from vaevar.run_folder import read_log

DATASET = "fashion_mnist"  # the data set
DATA_PATH = None  # its local files (else VAEVAR_DATA_DIR, else tensorflow-datasets)
RUN_DIR = "runs/fashion_mnist_seeds"  # first_<f>/ are made here, one whole run per first-stage seed
OUT = "results/fashion_mnist_first_stage_seeds"  # where the study's numbers, tables and sweeps go
SEEDS = "0,1,2"  # first-stage seeds (each run's second stages take the same seed)
BASE_FILTERS = 8  # the first stage's width
STAGE1_EPOCHS = 40  # the first stage's schedule
STAGE1_HALVE_EVERY = 10  # its learning rate halved every N epochs
STAGE1_LEARNING_RATE = 5e-4  # the first stage's (Adam)
EARLY = 10  # the first stage kept after this epoch: the early view
STAGE2_EPOCHS = 400  # each second stage's schedule (at 200, MSE still fell 0.14 % an epoch)
STAGE2_HALVE_EVERY = 50  # its learning rate halved every N epochs
STAGE2_TRAINER = "fast"  # the second stages' trainer: fast (on JAX; 2-3x fit's speed on a CPU) | fit
STAGE2_KEEP_AT = 5  # the second stage kept after this epoch too
WIDTH = 512  # the second stage's dense width
STAGE2_LEARNING_RATE = 5e-4  # the second stage's (Adam)
LATENT_FD_EVERY = 10  # epochs between latent Frechet distances in the second stage's log.csv
SAMPLES = 1000  # images per sweep point, and test images in the reference
TAIL = 0.1  # the convergence rule: the last TAIL of the epochs, at the final learning rate, ...
TOLERANCE = 0.01  # ... over which MSE and KL change by less than this, relative
TIME_BUDGET = 0  # seconds each training command may run before it checkpoints and stops (0: no limit)
STEP = "all"  # all | train | sweep | keep (copy the run folders' files into OUT) | report
VIEWS = "converged,early"  # the views trained, swept and reported (converged: the final first stage)
EARLY_TRAINED_AGAIN = False  # take a first stage of EARLY epochs that is another run as the early view's

ALL_VIEWS = ("converged", "early")


def run(script, *argv, backend=None):
    """A script's own command (on `backend` when given: KERAS_BACKEND); its time-budget stop stops the study
    with the same message and exit code."""
    command = [sys.executable, script, *map(str, argv)]
    environ = dict(os.environ, KERAS_BACKEND=backend) if backend else None
    print("$", *([f"KERAS_BACKEND={backend}"] if backend else []), " ".join(command), flush=True)
    code = subprocess.run(command, env=environ).returncode
    if code == errors.EXIT_TIME_BUDGET:
        raise errors.TimeBudgetReached(
            message=f"{script} stopped at its time budget: rerun the study to go on"
        )
    if code:
        raise errors.VaevarError(f"{script} failed (exit code {code}); its message is above")


def run_dir(args, seed):
    return os.path.join(args.run_dir, f"first_{seed}")


def stage1_epoch(args, view):
    return 0 if view == "converged" else args.early


def view_paths(args, seed, view):
    """The run's files seen with the view's first stage: the final one, or the kept copy and its own second."""
    return layout.RunPaths(run_dir(args, seed), stage1_epoch=stage1_epoch(args, view))


def common(args, seed, view="converged"):
    """The flags of every script on this run and view."""
    flags = ["--dataset", args.dataset, "--run-dir", run_dir(args, seed)]
    flags += ["--data-path", args.data_path] if args.data_path else []
    return flags + (["--stage1-epoch", args.early] if view == "early" else [])


def budget(args):
    return ["--time-budget", args.time_budget] if args.time_budget else []


def finished(stage, epochs):
    """The stage completed `epochs` (its config.json); a shorter one is run again: it resumes and goes on."""
    return os.path.exists(stage.config) and files.load_json(stage.config).get("epochs") == epochs


def trained_epochs(stage):
    """The epochs a stage has completed by its config.json (0 without one)."""
    return files.load_json(stage.config).get("epochs", 0) if os.path.exists(stage.config) else 0


def stage1_target(args):
    """The first stage's epochs that the views need: all of them for the converged view, else the early
    copy's (the early view alone trains no further; a later run with the converged view resumes it)."""
    return args.stage1_epochs if "converged" in args.views else args.early


def train(args, seed):
    paths = layout.RunPaths(run_dir(args, seed))
    if trained_epochs(paths.stage1) < stage1_target(args):
        run(
            "train_first_stage.py",
            *common(args, seed),
            *["--base-filters", args.base_filters, "--epochs", stage1_target(args), "--seed", seed],
            *["--halve-every", args.stage1_halve_every, "--learning-rate", args.stage1_learning_rate],
            *["--keep-models-at", args.early, "--verbose", 2, "--allow-cpu", *budget(args)],
        )
    for view in args.views:
        if finished(view_paths(args, seed, view).stage2, args.stage2_epochs):
            continue
        run(
            "train_second_stage.py",
            *common(args, seed, view),
            *[
                "--epochs",
                args.stage2_epochs,
                "--halve-every",
                args.stage2_halve_every,
                "--width",
                args.width,
            ],
            *["--learning-rate", args.stage2_learning_rate, "--keep-models-at", args.stage2_keep_at],
            *["--latent-fd-every", args.latent_fd_every, "--seed", seed, "--verbose", 2, "--allow-cpu"],
            *["--trainer", args.stage2_trainer, *budget(args)],
            backend="jax" if args.stage2_trainer == "fast" else None,
        )


def sweep(args, seed, view):
    stage1 = layout.RunPaths(run_dir(args, seed)).stage1
    if view == "converged" and trained_epochs(stage1) < args.stage1_epochs:
        raise errors.VaevarError(
            f"{stage1.dir} has {trained_epochs(stage1)} of {args.stage1_epochs} epochs: train it (--step train "
            "with the converged view) before sweeping its converged view"
        )
    if not os.path.exists(view_paths(args, seed, view).sweep_file("sweep.json")):
        run(
            "sweep_latent_scale.py",
            *common(args, seed, view),
            *["--kinds", "rec,gen1,gen2", "--scales", "auto", "--num-samples", args.samples],
        )


def convergence(rows, tail=TAIL, tolerance=TOLERANCE):
    """The rule on a log.csv's rows: over the last `tail` of the epochs (and the epoch before them, so that
    each change spans that many epochs), all at the final learning rate, MSE and KL change by less than
    `tolerance` relative to their value at the start; each measure's change and the verdict. A second
    stage's log with latent distances (--latent-fd-every) also gets the rule on GEN-2's latent Frechet
    distance, over the window's rows that hold one (`latent_fd_converged`): what the sweeps depend on."""
    count = max(1, int(round(len(rows) * tail)))
    if len(rows) < count + 1:
        raise errors.VaevarError(f"{len(rows)} epochs in the log: too few for the convergence rule")
    window = rows[-(count + 1) :]
    rates = {float(r["learning_rate"]) for r in window[1:]}
    result = {"epochs": len(rows), "window": [int(window[0]["epoch"]), int(window[-1]["epoch"])]}
    result["final_learning_rate_throughout"] = rates == {float(rows[-1]["learning_rate"])}
    for measure in ("mse", "kl"):
        values = [float(r[measure]) for r in window]
        result[f"{measure}_change"] = (values[-1] - values[0]) / abs(values[0])
        result[f"{measure}_range"] = (max(values) - min(values)) / abs(values[0])
    result["converged"] = bool(
        result["final_learning_rate_throughout"]
        and all(result[f"{m}_range"] < tolerance for m in ("mse", "kl"))
    )
    distances = [float(r["latent_fd_gen2"]) for r in window if r.get("latent_fd_gen2") not in (None, "")]
    if len(distances) >= 2:
        result["latent_fd"] = [distances[0], distances[-1]]
        start = abs(distances[0]) or float("nan")  # a distance of 0: no relative change (the rule fails)
        result["latent_fd_change"] = (distances[-1] - distances[0]) / start
        result["latent_fd_range"] = (max(distances) - min(distances)) / start
        result["latent_fd_converged"] = bool(
            result["final_learning_rate_throughout"] and result["latent_fd_range"] < tolerance
        )
    return result


def sweep_summary(sweep):
    """Per kind: the best scale by FID (and whether it is the grid's edge), FID at s = 1 and there, the noise
    (SD of the difference of two seeds' FIDs), where the pixel variance reaches the data's, and its ratio at
    the optimum."""
    summary = {}
    for kind, entry in sweep["kinds"].items():
        points = {p["scale"]: p for p in entry["points"]}
        best = entry["best_scale"]["fid"]
        summary[kind] = {
            "best_scale": best,
            "best_at_grid_edge": best in (min(points), max(points)),
            "fid_s1": points[1.0]["fid"],
            "fid_best": points[best]["fid"],
            "fid_difference_sd": entry["noise"]["fid_difference_sd"],
            "matched_scale": entry["matched_scale"],
            "scale_at_pixel_variance_ratio_1": entry["scale_at_pixel_variance_ratio_1"],
            "pixel_variance_ratio_at_best_fid": entry["pixel_variance_ratio_at_best_fid"],
            "grid": sorted(points),
        }
    return summary


def kept(source, target):
    """The results' copy of a run's file: refreshed from the run folder where that holds it, else the copy
    kept before (the run folder gone: the report reads committed files alone); neither, one line."""
    if os.path.exists(source):
        files.copy_file(source, target)
    elif not os.path.exists(target):
        raise errors.VaevarError(
            f"neither {source} nor {target} exists: run the study's train and sweep steps first"
        )
    return target


def sweep_copy(args, seed, view):
    """OUT's copy of a run's sweep of a view, without its extension (.json, .md, .png)."""
    return os.path.join(args.out, "sweeps", f"first_{seed}_{view}")


def check_copy_is_the_runs(args, seed, view):
    """Where a run folder holds a finished first stage but no sweep of the view, the kept copy must be a sweep
    of that first stage (the view's: the final one, or the kept epoch copy), or it is another run's: the
    report would pair its sweep with this run's logs. Checked before anything is copied."""
    paths = view_paths(args, seed, view)
    copy = sweep_copy(args, seed, view) + ".json"
    if os.path.exists(paths.sweep_file("sweep.json")) or not os.path.exists(copy):
        return
    if not os.path.exists(paths.first_stage_model) or not os.path.exists(paths.stage1.config):
        return
    if view == "converged" and trained_epochs(paths.stage1) < args.stage1_epochs:
        return  # its final model is not the converged one: the logs tell the runs apart (first_epochs_of)
    if view == "converged":
        digest = files.load_json(paths.stage1.config).get("weights")
    else:
        from vaevar.run_folder import load_model

        digest = files.weights_digest(load_model(paths.first_stage_model, compile=False))
    if files.load_json(copy).get("stage1_weights") != digest:
        raise errors.VaevarError(
            f"{copy} is the sweep of another first stage than {paths.first_stage_model} (weights {digest}): "
            f"sweep this run (--step sweep), or move the run folder {run_dir(args, seed)} aside"
        )


def stage1_log_copy(args, seed):
    return os.path.join(args.out, f"first_{seed}_stage1_log.csv")


def early_log_copy(args, seed):
    return os.path.join(args.out, f"first_{seed}_early_stage1_log.csv")


def first_epochs_of(args, seed):
    """Whether the run folder's first stage log is shorter than the kept one (a run trained again for the
    early view alone): "same" where it is the kept run's first epochs, every column but the seconds equal
    (the same run trained again, bit for bit); "again" where it differs, is EARLY epochs long and
    --early-trained-again accepts it as the early view's own first stage; else another run, refused in one
    line. False where it is not shorter (or either log is missing). The kept log stays in both cases.
    Checked before anything is copied."""
    source = view_paths(args, seed, "converged").stage1.log
    target = stage1_log_copy(args, seed)
    if not (os.path.exists(source) and os.path.exists(target)):
        return False
    ran, kept_rows = read_log(source), read_log(target)
    if len(ran) >= len(kept_rows):
        return False

    def numbers(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    if numbers(ran) == numbers(kept_rows[: len(ran)]):
        return "same"
    if args.early_trained_again and len(ran) == args.early:
        return "again"
    raise errors.VaevarError(
        f"{source}'s {len(ran)} epochs are not the first of {target}: another run of first-stage seed {seed} "
        f"(another CPU rounds otherwise); move the run folder {run_dir(args, seed)} aside, or take a run of "
        f"{args.early} epochs as the early view's own first stage with --early-trained-again"
    )


def early_stage1_log(args, seed, status):
    """The log of the early view's first stage: the kept run's (its first EARLY epochs), or the copy in OUT
    of a run trained again, refreshed from the run folder (a stale copy goes where the run folder holds the
    kept run; with the run folder gone, a kept copy stays the early view's)."""
    source, copy = view_paths(args, seed, "converged").stage1.log, early_log_copy(args, seed)
    if status == "again":
        files.copy_file(source, copy)
    elif os.path.exists(source) and os.path.exists(copy):
        os.remove(copy)  # the run folder holds the kept run: its own first epochs are the early view's
    return copy if os.path.exists(copy) else stage1_log_copy(args, seed)


def early_first_stage(args, stage1_log, early_log):
    """The early view's first stage at epoch EARLY: whether it is a run trained again, its MSE and KL beside
    the kept run's."""
    kept_row = read_log(stage1_log)[args.early - 1]
    row = read_log(early_log)[args.early - 1]
    result = {"trained_again": early_log != stage1_log}
    for measure in ("mse", "kl"):
        result[measure], result[f"kept_run_{measure}"] = float(row[measure]), float(kept_row[measure])
        result[f"{measure}_difference"] = result[measure] / result[f"kept_run_{measure}"] - 1
    return result


def keep(args, seeds):
    """The run folders' files copied into OUT, after the checks: per seed the first stage's log, the early
    view's first stage's (early_stage1_log), and per view the second stage's log and the sweep (with its .md
    and .png where the run folder has them). Returns per seed the copies' paths."""
    statuses = {seed: first_epochs_of(args, seed) for seed in seeds}
    for seed in seeds:
        for view in args.views:
            check_copy_is_the_runs(args, seed, view)
    os.makedirs(os.path.join(args.out, "sweeps"), exist_ok=True)
    copies = {}
    for seed in seeds:
        log = stage1_log_copy(args, seed)
        copy = copies[seed] = {
            "stage1_log": log if statuses[seed] else kept(view_paths(args, seed, "converged").stage1.log, log)
        }
        if "early" in args.views:
            copy["early_stage1_log"] = early_stage1_log(args, seed, statuses[seed])
        for view in args.views:
            paths = view_paths(args, seed, view)
            log = os.path.join(args.out, f"first_{seed}_{view}_stage2_log.csv")
            copy[f"{view}_stage2_log"] = kept(paths.stage2.log, log)
            target = sweep_copy(args, seed, view)
            copy[f"{view}_sweep"] = kept(paths.sweep_file("sweep.json"), target + ".json")
            for name in ("sweep.md", "sweep.png"):  # shown beside it, where the run folder has them
                if os.path.exists(paths.sweep_file(name)):
                    files.copy_file(paths.sweep_file(name), target + "." + name.split(".")[1])
    return copies


def report(args, seeds):
    copies = keep(args, seeds)
    study = {"dataset": args.dataset, "seeds": seeds, "early": args.early, "samples": args.samples}
    study["rule"] = (
        f"over the last {args.tail:g} of the epochs at the final learning rate, MSE and KL within "
    )
    study["rule"] += f"{args.tolerance:.0%} of their value at its start; for a second stage, GEN-2's latent "
    study["rule"] += "Frechet distance too (its logged rows in that window): what the sweeps depend on"
    study["stage1"], study["stage2"] = {}, {}
    for seed in seeds:
        study["stage1"][str(seed)] = convergence(
            read_log(copies[seed]["stage1_log"]), args.tail, args.tolerance
        )
        if "early" in args.views:
            early = early_first_stage(args, copies[seed]["stage1_log"], copies[seed]["early_stage1_log"])
            study.setdefault("early_stage1", {})[str(seed)] = early
        for view in args.views:
            rule = convergence(read_log(copies[seed][f"{view}_stage2_log"]), args.tail, args.tolerance)
            study["stage2"].setdefault(str(seed), {})[view] = rule
    study["views"] = {}
    for view in args.views:
        sweeps = [copies[seed][f"{view}_sweep"] for seed in seeds]
        study["views"][view] = {str(s): sweep_summary(files.load_json(p)) for s, p in zip(seeds, sweeps)}
        run("aggregate_runs.py", *sweeps, "--split", "--out", os.path.join(args.out, view))
    files.save_json(os.path.join(args.out, "study.json"), study)
    files.save_text(os.path.join(args.out, "table.md"), table(study))
    print(open(os.path.join(args.out, "table.md")).read())


def table(study):
    lines = [
        f"Convergence rule: {study['rule']}.",
        "",
        "| stage | epochs | MSE change | KL change | met | GEN-2 latent FD change (range) | met |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    rules = list(study["stage1"].items())
    rules += [
        (f"{seed}, its {view} view's second stage", rule)
        for seed, views in study.get("stage2", {}).items()
        for view, rule in views.items()
    ]
    for name, rule in rules:
        latent = "- | -"
        if "latent_fd_change" in rule:
            latent = f"{rule['latent_fd_change']:+.2%} ({rule['latent_fd_range']:.2%}) | "
            latent += "yes" if rule["latent_fd_converged"] else "no"
        lines.append(
            f"| {name} | {rule['epochs']} | {rule['mse_change']:+.2%} | {rule['kl_change']:+.2%} | "
            f"{'yes' if rule['converged'] else 'no'} | {latent} |"
        )
    lines += [
        "",
        "| view | first stage | kind | best s (FID) | FID s = 1 -> best (noise SD) | pixel variance = data's "
        "at s | pixel variance ratio at best s | matched s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for view, per_seed in study["views"].items():
        for seed, kinds in per_seed.items():
            for kind, k in kinds.items():
                edge = " (grid edge)" if k["best_at_grid_edge"] else ""
                crossing = k["scale_at_pixel_variance_ratio_1"]
                lines.append(
                    f"| {view} | {seed} | {kind} | {k['best_scale']:.3g}{edge} | {k['fid_s1']:.2f} -> "
                    f"{k['fid_best']:.2f} ({k['fid_difference_sd']:.2f}) | "
                    f"{'-' if crossing is None else f'{crossing:.3f}'} | "
                    f"{k['pixel_variance_ratio_at_best_fid']:.3f} | {k['matched_scale']:.3f} |"
                )
    earlies = study.get("early_stage1", {})
    lines += [""] if earlies else []
    for seed, early in earlies.items():
        where = "trained again (another run)" if early["trained_again"] else "the kept run's own"
        lines.append(
            f"- Early view, first stage {seed}: {where}; at epoch {study['early']} MSE {early['mse']:.6g} "
            f"({early['mse_difference']:+.2%} vs the kept run's), KL {early['kl']:.6g} ({early['kl_difference']:+.2%})."
        )
    mean_gap = [
        k["best_scale"] - k["scale_at_pixel_variance_ratio_1"]
        for per_seed in study["views"].values()
        for kinds in per_seed.values()
        for k in kinds.values()
        if k["scale_at_pixel_variance_ratio_1"] is not None
    ]
    if mean_gap:
        lines += [
            "",
            f"Best s minus the pixel-variance crossing, over every row: mean {np.mean(mean_gap):+.3f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    seeds = [int(s) for s in str(args.seeds).split(",")]
    views = str(args.views)
    args.views = [v for v in views.split(",") if v]
    if not args.views or not set(args.views) <= set(ALL_VIEWS) or len(set(args.views)) != len(args.views):
        raise errors.VaevarError(f"--views {views}: give some of {', '.join(ALL_VIEWS)}, each once")
    if len(set(seeds)) != len(seeds) or (len(seeds) < 2 and args.step in ("all", "report")):
        raise errors.VaevarError(
            f"--seeds {args.seeds}: give different first-stage seeds, at least 2 to report (one to train or sweep)"
        )
    if args.step in ("all", "train"):
        for seed in seeds:
            train(args, seed)
    if args.step in ("all", "sweep"):
        for view in args.views:
            for seed in seeds:
                sweep(args, seed, view)
    if args.step == "keep":
        for seed, copy in keep(args, seeds).items():
            print(f"first stage {seed}: kept", ", ".join(copy.values()))
    if args.step in ("all", "report"):
        report(args, seeds)


if __name__ == "__main__":
    errors.run_main(main)
