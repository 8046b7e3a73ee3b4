"""Runs of one data set with other seeds, summarised with paired statistics.

    python aggregate_runs.py runs/cifar10_seed0 runs/cifar10_seed1 runs/cifar10_seed2 --out results/seeds

Reads each run's fid.json (compute_fid.py; --stage2-epoch E: the kept second stage's) and, where there,
its scale sweep (sweep_latent_scale.py). Prints, and with --out writes aggregate.json and aggregate.md:
- every metric of every scored set as mean ± sample SD, with n;
- each kind's renormalization gain (plain - renormalized, FID and KID; positive: renormalizing helped) as a
  paired difference over the runs: its mean, a 95 % t-interval, the t-test's p and the runs where it is
  positive. The design is paired (the same first stage, noise and reference on both sides of a gain), so
  the gain's interval, not the overlap of the two sides' spreads, says whether it is there;
- the sweep's best scale per kind, mean ± SD.
Runs of different data sets or protocols (reference, n, weights, input convention) are refused.
"""

import glob
import os

from vaevar import cli, errors, files
from vaevar.seeds import load_scores, summarise

OUT = None  # a folder for aggregate.json and aggregate.md; default: print only
STAGE2_EPOCH = 0  # the scores of the second stage kept after epoch E in every run; 0: the final ones

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
    cli.require_positive(args, "stage2_epoch", allow_zero=("stage2_epoch",))
    dirs = run_dirs(args.run_dirs)
    if not dirs:
        raise errors.VaevarError("give the run directories to aggregate, e.g. runs/cifar10_seed*")
    for run_dir in dirs:
        if not os.path.isdir(run_dir):
            raise errors.VaevarError(f"{run_dir} is not a run directory")
    summary = summarise([load_scores(d, args.stage2_epoch) for d in dirs])
    text = table(summary)
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        files.save_json(os.path.join(args.out, "aggregate.json"), summary)
        files.save_text(os.path.join(args.out, "aggregate.md"), text)
        print(f"written to {args.out}")
    return summary


if __name__ == "__main__":
    errors.run_main(main)
