"""Runs of several seeds, summarised: each metric as mean ± sample SD, and each renormalization gain as a
paired difference (the same first stage, noise and reference on both sides of it), with a t-interval."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from vaevar import files, layout
from vaevar.errors import VaevarError

# What two runs' scores must share to be summarised together (fid.json's entries record it).
PROTOCOL_KEYS = ("reference", "reference_split", "n", "reference_n", "weights_hash", "input_convention")
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
GAINS = ("fid", "kid")  # gain = plain - renormalized: positive when renormalizing lowers the distance


ARRAY_TASK = "SLURM_ARRAY_TASK_ID"  # the task's index in a SLURM job array (sbatch --array=0-9)


def task_seed(seed: int | None, environ: Mapping[str, str]) -> int | None:
    """The seed given, else the array task's index where a SLURM array runs this, else None."""
    if seed is not None:
        return seed
    task = environ.get(ARRAY_TASK, "").strip()
    if not task:
        return None
    if not task.isdigit():
        raise VaevarError(f"{ARRAY_TASK}={task!r} is not a task index: give --seed N")
    return int(task)


def mean_sd(values: Sequence[float]) -> dict[str, float | int]:
    """Mean and sample SD (ddof 1; 0 for one value) with n."""
    values = np.asarray(values, np.float64)
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def paired_difference(
    differences: Sequence[float], confidence: float = 0.95
) -> dict[str, float | int | None]:
    """A paired design's differences (one per run): mean, sample SD, the t-interval of the mean, the
    two-sided p of a one-sample t-test against 0, and how many are positive. n = 1: no interval."""
    from scipy import stats

    d = np.asarray(differences, np.float64)
    result = dict(mean_sd(d), positive=int(np.sum(d > 0)), ci_low=None, ci_high=None, p=None)
    if len(d) > 1:
        half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * result["sd"] / math.sqrt(len(d))
        result.update(ci_low=result["mean"] - half, ci_high=result["mean"] + half)
        if result["sd"] > 0:
            result["p"] = float(stats.ttest_1samp(d, 0.0).pvalue)
    return result


def load_scores(run_dir: str, stage2_epoch: int = 0) -> dict:
    """A run's fid.json (and its scale sweep's sweep.json, when there) with the data set and the protocol
    its sets were scored under; refuses a run scored under two protocols."""
    paths = layout.RunPaths(run_dir, stage2_epoch)
    if not os.path.exists(paths.fid_results):
        raise VaevarError(f"{paths.fid_results} not found: run compute_fid.py on {run_dir} first")
    scores = files.load_json(paths.fid_results)
    protocols = {tuple(entry.get(k) for k in PROTOCOL_KEYS) for entry in scores.values()}
    if len(protocols) != 1:
        raise VaevarError(
            f"{paths.fid_results} holds sets scored under {len(protocols)} protocols: rescore them"
        )
    sweep_path = paths.sweep_file("sweep.json")
    return {
        "run_dir": run_dir,
        "dataset": paths.trained_dataset() or next(iter(scores.values())).get("reference"),
        "protocol": dict(zip(PROTOCOL_KEYS, protocols.pop())),
        "scores": scores,
        "sweep": files.load_json(sweep_path) if os.path.exists(sweep_path) else None,
    }


def check_comparable(runs: Sequence[dict]) -> None:
    """One data set and one protocol across runs, else a one-line error naming the first difference."""
    first = runs[0]
    for run in runs[1:]:
        if run["dataset"] != first["dataset"]:
            raise VaevarError(
                f"{run['run_dir']} is a {run['dataset']} run, {first['run_dir']} a {first['dataset']} one: "
                f"aggregate one data set at a time"
            )
        for key in PROTOCOL_KEYS:
            if run["protocol"][key] != first["protocol"][key]:
                raise VaevarError(
                    f"{run['run_dir']} was scored with {key} {run['protocol'][key]}, {first['run_dir']} with "
                    f"{first['protocol'][key]}: rescore them under one protocol"
                )


def summarise(runs: Sequence[dict]) -> dict:
    """Every set's metrics over runs (mean ± SD), each kind's gains as paired differences over the runs that
    scored both of its sets, and the sweep's best scales."""
    check_comparable(runs)
    sets = sorted({name for run in runs for name in run["scores"]}, key=_set_order)
    metrics = {}
    for name in sets:
        entries = [run["scores"][name] for run in runs if name in run["scores"]]
        metrics[name] = {m: mean_sd([e[m] for e in entries]) for m in METRICS if all(m in e for e in entries)}
    gains = {}
    for kind in layout.KINDS:
        for metric in GAINS:
            pairs = [
                (run["scores"][kind][metric], run["scores"][f"{kind}_renorm"][metric])
                for run in runs
                if metric in run["scores"].get(kind, {}) and metric in run["scores"].get(f"{kind}_renorm", {})
            ]
            if pairs:
                plain, renormed = np.array(pairs).T
                gains.setdefault(kind, {})[metric] = dict(
                    paired_difference(plain - renormed),
                    plain=mean_sd(plain),
                    renormalized=mean_sd(renormed),
                )
    best_scales = {}
    sweeps = [run["sweep"] for run in runs if run["sweep"]]
    for kind in layout.KINDS:
        for metric in GAINS:
            found = [s["kinds"][kind]["best_scale"][metric] for s in sweeps if kind in s["kinds"]]
            if found:
                best_scales.setdefault(kind, {})[metric] = mean_sd(found)
    return {
        "dataset": runs[0]["dataset"],
        "protocol": runs[0]["protocol"],
        "runs": [run["run_dir"] for run in runs],
        "metrics": metrics,
        "gains": gains,
        "best_scales": best_scales,
    }


def _set_order(name: str) -> tuple[int, str]:
    order = layout.SAMPLE_SETS + layout.EXTRA_SAMPLERS
    return (order.index(name), name) if name in order else (len(order), name)
