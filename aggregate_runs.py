"""Runs of one data set with other seeds, summarised with paired statistics.

    python aggregate_runs.py runs/cifar10_seed0 runs/cifar10_seed1 runs/cifar10_seed2 --out results/seeds

Reads each run's fid.json (compute_fid.py; --stage2-epoch / --stage1-epoch E: a kept stage's) and, where
there, its scale sweep (sweep_latent_scale.py). Prints, and with --out writes aggregate.json and aggregate.md:
- every metric of every scored set as mean ± sample SD, with n;
- each kind's renormalization gain (plain - renormalized, FID and KID; positive: renormalizing helped) as a
  paired difference over the runs: its mean, a 95 % t-interval, the t-test's p and the runs where it is
  positive. The design is paired (the same first stage, noise and reference on both sides of a gain), so
  the gain's interval, not the overlap of the two sides' spreads, says whether it is there;
- the sweep's best scale per kind, mean ± SD.
Runs of different data sets or protocols (reference, n, weights, input convention) are refused.

--split instead splits GEN-2's gain (docs/variance_analysis.md) from each run's sweep.json alone, the runs
being first-stage seeds (each with its own second stage; runs of one first stage are refused). Two views,
FID and KID, each paired over the runs (mean ± SD, 95 % t-interval, p against 0):
- scales: s*_GEN-2 / s_matched,GEN-2 - s*_REC, and the same for GEN-1 (s*: the sweep's best scale);
- gains at GEN-2's matched scale s_m: each kind's (FID(1) - FID(s_m)) / FID(1), with FID(s_m) interpolated
  linearly between grid points for every kind alike, and GEN-2's minus REC's and minus GEN-1's.
With --out: split.json and split.md. A sweep.json may stand for its run (a copy kept with the results): the view
is the one it records.
"""

import glob
import os

from vaevar import cli, errors, files
from vaevar.seeds import load_scores, load_sweep, split_gain, summarise

OUT = None  # a folder for aggregate.json and aggregate.md (split.json, split.md); default: print only
STAGE2_EPOCH = 0  # the scores of the second stage kept after epoch E in every run; 0: the final ones
STAGE1_EPOCH = 0  # the scores of the first stage kept after epoch E (its own second stage); 0: the final ones
SPLIT = False  # instead: GEN-2's gain split into generic and second-stage parts, from each run's sweep.json

_RUNS_HELP = "run directories (glob patterns too), each scored by compute_fid.py"


def interval(gain, k=1.0):
    """The gain's t-interval (times k), and its p."""
    if gain["ci_low"] is None:
        return "n = 1: no interval"
    p = f", p = {gain['p']:.3g}" if gain["p"] is not None else ""
    return f"[{k * gain['ci_low']:+.2f}, {k * gain['ci_high']:+.2f}]{p}"


def table(summary):
    scale = {"fid": 1.0, "kid": 1000.0}  # KID x 1000, as fid_table.md shows it
    lines = [
        f"# {summary['dataset']}: {len(summary['runs'])} runs",
        "",
        "Runs: " + ", ".join(summary["runs"]) + ".",
        "",
        f"n = {summary['protocol']['n']} per side against {summary['protocol']['reference_n']} "
        f"{summary['protocol']['reference']} {summary['protocol']['reference_split']} images.",
        "",
        "## Renormalization gains, paired (plain - renormalized; KID x 1000)",
        "",
        "| kind | metric | plain, mean ± SD | renormalized, mean ± SD | gain, mean ± SD | 95 % CI | positive |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, by_metric in summary["gains"].items():
        for metric, gain in by_metric.items():
            k = scale[metric]
            lines.append(
                f"| {kind} | {metric} | {k * gain['plain']['mean']:.2f} ± {k * gain['plain']['sd']:.2f} | "
                f"{k * gain['renormalized']['mean']:.2f} ± {k * gain['renormalized']['sd']:.2f} | "
                f"{k * gain['mean']:+.2f} ± {k * gain['sd']:.2f} | "
                f"{interval(gain, k)} | "
                f"{gain['positive']} of {gain['n']} |"
            )
    lines += [
        "",
        "## Every set (mean ± SD over runs, n)",
        "",
        "| set | " + " | ".join(_metric_names()) + " |",
    ]
    lines.append("|---|" + "---|" * len(_metric_names()))
    for name, metrics in summary["metrics"].items():
        cells = []
        for metric in _metric_names():
            m = metrics.get(metric)
            k = scale.get(metric, 1.0)
            cells.append(f"{k * m['mean']:.3f} ± {k * m['sd']:.3f} ({m['n']})" if m else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if summary["best_scales"]:
        lines += [
            "",
            "## Best latent scale (sweep_latent_scale.py), mean ± SD",
            "",
            "| kind | by FID | by KID |",
        ]
        lines.append("|---|---|---|")
        for kind, by_metric in summary["best_scales"].items():
            cells = [
                f"{by_metric[m]['mean']:.3f} ± {by_metric[m]['sd']:.3f} ({by_metric[m]['n']})"
                if m in by_metric
                else "-"
                for m in ("fid", "kid")
            ]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _row(label, stat, k=1.0, unit=""):
    """A paired quantity's cells: mean ± SD, 95 % CI, p, positive."""
    p = f"{stat['p']:.3g}" if stat.get("p") is not None else "-"
    ci = f"[{k * stat['ci_low']:+.3f}, {k * stat['ci_high']:+.3f}]" if stat["ci_low"] is not None else "-"
    return (
        f"| {label} | {k * stat['mean']:+.3f}{unit} ± {k * stat['sd']:.3f} | {ci} | {p} | "
        f"{stat['positive']} of {stat['n']} |"
    )


# split.md's gain rows: the key in a view's gains, its label
_GAIN_ROWS = (
    ("rec", "REC's gain"),
    ("gen1", "GEN-1's gain"),
    ("gen2", "GEN-2's gain"),
    ("gen2_minus_rec", "GEN-2's - REC's"),
    ("gen2_minus_gen1", "GEN-2's - GEN-1's"),
)


def _gain_table(split, gains):
    """split.md's table of a view's gains (`gains`: its key in each metric's view), in %."""
    lines = ["| by | quantity | mean ± SD | 95 % CI | p | positive |", "|---|---|---|---|---|---|"]
    for metric, view in split["views"].items():
        for key, label in _GAIN_ROWS:
            lines.append(_row(f"{metric.upper()} | {label}", view[gains][key], 100.0, " %"))
    return lines


def split_table(split):
    """split.md: the two views of GEN-2's gain, then each run's numbers."""
    names = {"rec": "REC", "gen1": "GEN-1", "gen2": "GEN-2"}
    s_m = split["s_m"]
    lines = [
        f"# GEN-2's gain split: {split['dataset']}, {len(split['runs'])} first-stage seeds",
        "",
        "Runs: " + ", ".join(split["runs"]) + f"; {split['num_samples']} samples a point. Each quantity "
        "is paired over the runs: mean ± SD, the 95 % t-interval, the t-test's p against 0, the runs where "
        "it is positive.",
        "",
        "## Scales: s*_kind / s_matched,kind - s*_REC",
        "",
        "REC's codes have the data's spread, so s*_REC is the generic effect alone; if GEN-2's variance loss "
        "and the generic effect compound, s*_GEN-2 = s_matched x s*_REC and the excess is 0. Matched scales: "
        + ", ".join(f"{names[k]} {m['mean']:.3f} ± {m['sd']:.3f}" for k, m in split["matched_scale"].items())
        + ".",
        "",
        "| by | quantity | mean ± SD | 95 % CI | p | positive |",
        "|---|---|---|---|---|---|",
    ]
    for metric, view in split["views"].items():
        best = view["scales"]["best"]
        lines.append(
            f"| {metric.upper()} | s*: "
            + ", ".join(f"{names[k]} {b['mean']:.3f} ± {b['sd']:.3f}" for k, b in best.items())
            + " | | | | |"
        )
        for kind in ("gen2", "gen1"):
            lines.append(_row(f"{metric.upper()} | {names[kind]}'s excess", view["scales"][f"{kind}_excess"]))
    lines += [
        "",
        f"## Gains at GEN-2's matched scale s_m = {s_m['mean']:.3f} ± {s_m['sd']:.3f}: "
        "(metric(1) - metric(s_m)) / metric(1)",
        "",
        "In %. Each kind's FID and KID at s_m: scored there where every run's sweep scored every kind at s_m "
        + f"({sum(r['fid']['scored_at_s_m'] is not None for r in split['per_run'])} of {len(split['runs'])} "
        "runs did), else interpolated linearly between its grid's neighbours (every run and kind alike) where "
        "s_m is not on the grid"
        + f": here {len(split['interpolated'])} of {3 * len(split['runs'])} (run, kind)"
        + ". A GEN-2 excess whose interval excludes 0 is the second stage's part; the rest is generic.",
        "",
        *_gain_table(split, "gains"),
    ]
    checks = {m: view["gen2_check"] for m, view in split["views"].items()}
    lines += [
        "",
        "## The same gains read off a parabola",
        "",
        "In %. Each kind's metric at s_m from the parabola through its three grid points nearest s_m: a straight "
        "line between two points of a curve that bends up overstates it. The check, GEN-2 scored at s_m itself, "
        "interpolated minus measured (mean ± SD over the runs): "
        + "; ".join(
            f"{m.upper()} line {c['linear_minus_measured']['mean']:+.4g} ± {c['linear_minus_measured']['sd']:.2g}, "
            f"parabola {c['curved_minus_measured']['mean']:+.4g} ± {c['curved_minus_measured']['sd']:.2g}"
            for m, c in checks.items()
        )
        + ".",
        "",
        *_gain_table(split, "gains_curved"),
    ]
    lines += [
        "",
        "## Each run",
        "",
        "| run | s_m | s* by FID: REC, GEN-1, GEN-2 | FID gain at s_m, %: REC, GEN-1, GEN-2 | GEN-2's FID at "
        "s_m: line / parabola / measured |",
        "|---|---|---|---|---|",
    ]
    for r in split["per_run"]:
        fid = r["fid"]
        lines.append(
            f"| {r['run_dir']} | {r['s_m']:.3f} | "
            + ", ".join(f"{fid['best_scale'][k]:.3g}" for k in names)
            + " | "
            + ", ".join(f"{100 * fid['gain'][k]:+.2f}" for k in names)
            + f" | {fid['linear_at_s_m']['gen2']:.2f} / {fid['curved']['at_s_m']['gen2']:.2f} / "
            + f"{fid['gen2_measured_at_s_m']:.2f} |"
        )
    scored = [r for r in split["per_run"] if r["fid"]["scored_at_s_m"] is not None]
    if scored:
        lines += [
            "",
            "Scored at s_m (the interpolations' check on every kind), FID line / parabola / scored:",
        ]
        for r in scored:
            fid = r["fid"]
            lines.append(
                f"{r['run_dir']}: "
                + "; ".join(
                    f"{names[k]} {fid['linear_at_s_m'][k]:.2f} / {fid['curved']['at_s_m'][k]:.2f} / "
                    f"{fid['scored_at_s_m'][k]:.2f}"
                    for k in names
                )
                + ". GEN-2's gain minus GEN-1's, minus REC's, from the scores: "
                + "; ".join(
                    f"{m.upper()} {100 * r[m]['scored_gain']['gen2_minus_gen1']:+.2f} %, "
                    f"{100 * r[m]['scored_gain']['gen2_minus_rec']:+.2f} %"
                    for m in ("fid", "kid")
                )
                + "."
            )
    if split["best_at_grid_edge"]:
        lines += [
            "",
            "Best scales at their grid's edge (not optima: the curve may fall further out; extend the "
            "grid): " + "; ".join(split["best_at_grid_edge"]) + ".",
        ]
    return "\n".join(lines) + "\n"


def _metric_names():
    return ("fid", "kid", "precision", "recall")


def run_dirs(patterns):
    found = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise errors.VaevarError(f"{pattern} matches no run directory")
        found += [m for m in matches if m not in found]
    return found


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv, positional=("run_dirs", _RUNS_HELP))
    cli.require_positive(args, "stage2_epoch", "stage1_epoch", allow_zero=("stage2_epoch", "stage1_epoch"))
    dirs = run_dirs(args.run_dirs)
    if not dirs:
        raise errors.VaevarError("give the run directories to aggregate, e.g. runs/cifar10_seed*")
    for run_dir in dirs:
        sweep_file = args.split and run_dir.endswith(".json") and os.path.isfile(run_dir)
        if not (os.path.isdir(run_dir) or sweep_file):
            hint = " (or, with --split, a sweep.json)" if args.split or run_dir.endswith(".json") else ""
            raise errors.VaevarError(f"{run_dir} is not a run directory{hint}")
    if args.split:
        summary = split_gain([load_sweep(d, args.stage2_epoch, args.stage1_epoch) for d in dirs])
        name, text = "split", split_table(summary)
    else:
        summary = summarise([load_scores(d, args.stage2_epoch, args.stage1_epoch) for d in dirs])
        name, text = "aggregate", table(summary)
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        files.save_json(os.path.join(args.out, f"{name}.json"), summary)
        files.save_text(os.path.join(args.out, f"{name}.md"), text)
        print(f"written to {args.out}")
    return summary


if __name__ == "__main__":
    errors.run_main(main)
