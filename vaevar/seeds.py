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


def load_scores(run_dir: str, stage2_epoch: int = 0, stage1_epoch: int = 0) -> dict:
    """A run's fid.json (and its scale sweep's sweep.json, when there) with the data set and the protocol
    its sets were scored under; refuses a run scored under two protocols."""
    paths = layout.RunPaths(run_dir, stage2_epoch, stage1_epoch)
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


# ------------------------------------------------ GEN-2's gain split, from the sweeps of several first stages

SPLIT_METRICS = ("fid", "kid")


def load_sweep(run_dir: str, stage2_epoch: int = 0, stage1_epoch: int = 0) -> dict:
    """A run's scale sweep (sweep_latent_scale.py's sweep.json, of the view's stages) with the digest of the
    first stage it swept (its own stage1_weights; a sweep older than that field: stage1/config.json's, the
    final first stage's, which tells runs apart whichever view). run_dir may also be a sweep.json itself (a
    copy kept with the results, its run folder gone): the view is the one it records."""
    if os.path.isfile(run_dir):
        try:
            sweep = files.load_json(run_dir)
        except (OSError, ValueError) as error:
            raise VaevarError(f"cannot read {run_dir} as a sweep.json ({error})") from error
        if not isinstance(sweep, dict) or "kinds" not in sweep:
            raise VaevarError(f"{run_dir} is not a sweep_latent_scale.py sweep.json (no kinds)")
        if "stage1_weights" not in sweep:
            raise VaevarError(
                f"{run_dir} records no first-stage weights digest (stage1_weights): pass its run folder, "
                f"or sweep the run again"
            )
        asked = (stage1_epoch, stage2_epoch)
        if any(asked) and asked != (sweep.get("stage1_epoch"), sweep.get("stage2_epoch")):
            raise VaevarError(
                f"{run_dir} is the sweep of stage1_epoch {sweep.get('stage1_epoch')}, stage2_epoch "
                f"{sweep.get('stage2_epoch')}, not the view asked (--stage1-epoch {stage1_epoch}, "
                f"--stage2-epoch {stage2_epoch}): a sweep.json is its own view; drop the flags"
            )
        return {
            "run_dir": run_dir,
            "path": run_dir,
            "sweep": sweep,
            "stage1_weights": sweep["stage1_weights"],
        }
    paths = layout.RunPaths(run_dir, stage2_epoch, stage1_epoch)
    path = paths.sweep_file("sweep.json")
    if not os.path.exists(path):
        raise VaevarError(f"{path} not found: run sweep_latent_scale.py on {run_dir} first")
    config = files.load_json(paths.stage1.config) if os.path.exists(paths.stage1.config) else {}
    if "weights" not in config:
        raise VaevarError(
            f"{paths.stage1.config} records no weights digest: {run_dir}'s first stage has not finished; "
            f"finish it first"
        )
    sweep = files.load_json(path)
    return {
        "run_dir": run_dir,
        "path": path,
        "sweep": sweep,
        "stage1_weights": sweep.get("stage1_weights", config["weights"]),
    }


def _curve(run: dict, kind: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A kind's grid points (scale, metric), sorted by scale; refused without s = 1 or with a scale twice."""
    entry = run["sweep"]["kinds"].get(kind)
    if entry is None:
        raise VaevarError(
            f"{run['path']} has no {kind} sweep: rerun sweep_latent_scale.py with --kinds rec,gen1,gen2"
        )
    points = sorted((float(p["scale"]), float(p[metric])) for p in entry["points"])
    scales = [s for s, _ in points]
    if len(set(scales)) != len(scales):
        raise VaevarError(f"{run['path']}: the {kind} sweep holds a scale twice; rerun sweep_latent_scale.py")
    if 1.0 not in scales:
        raise VaevarError(
            f"{run['path']}: the {kind} sweep has no point at s = 1; rerun it with 1 in --scales"
        )
    return np.array(scales), np.array([v for _, v in points])


def value_at(run: dict, kind: str, metric: str, scale: float) -> dict:
    """The kind's metric at `scale`: its grid point, else linearly interpolated between the two grid points
    around it; a scale outside the grid is refused (no extrapolation)."""
    scales, values = _curve(run, kind, metric)
    if not scales[0] <= scale <= scales[-1]:
        raise VaevarError(
            f"{run['path']}: GEN-2's matched scale {scale:.4g} lies outside the {kind} sweep's grid "
            f"({scales[0]:g} ... {scales[-1]:g}); rerun sweep_latent_scale.py with scales around it"
        )
    upper = int(np.searchsorted(scales, scale))
    if scales[upper] == scale:
        return {"value": float(values[upper]), "between": None}
    return {"value": float(np.interp(scale, scales, values)), "between": [scales[upper - 1], scales[upper]]}


def value_at_curved(run: dict, kind: str, metric: str, scale: float) -> dict:
    """The kind's metric at `scale` from the parabola through the three grid points nearest to it (ties: the
    lower scale), its grid point where it is one: value_at's check, as FID and KID curve near s = 1 and a
    straight line between two points overstates them there. Refused outside the grid as value_at is."""
    scales, values = _curve(run, kind, metric)
    exact = value_at(run, kind, metric, scale)
    if exact["between"] is None or len(scales) < 3:
        return {"value": exact["value"], "through": None}
    nearest = sorted(range(len(scales)), key=lambda i: (round(abs(scales[i] - scale), 9), scales[i]))[:3]
    xs, ys = scales[nearest], values[nearest]
    value = sum(
        ys[i] * np.prod([(scale - xs[j]) / (xs[i] - xs[j]) for j in range(3) if j != i]) for i in range(3)
    )
    return {"value": float(value), "through": sorted(float(x) for x in xs)}


def check_split_runs(runs: Sequence[dict]) -> None:
    """At least two runs, each its own first stage (digests differ), one data set, sample count and view."""
    if len(runs) < 2:
        raise VaevarError(
            f"the split pairs over first-stage seeds: give the runs of at least 2, got {len(runs)}"
        )
    seen = {}
    for run in runs:
        digest = run["stage1_weights"]
        if digest in seen:
            raise VaevarError(
                f"{run['run_dir']} and {seen[digest]} have the same first stage (weights {digest[:12]}): "
                f"the split pairs over first-stage seeds; pass runs of different first-stage seeds"
            )
        seen[digest] = run["run_dir"]
    first = runs[0]["sweep"]
    for run in runs[1:]:
        for key in ("dataset", "num_samples", "stage1_epoch", "stage2_epoch"):
            if run["sweep"].get(key) != first.get(key):
                raise VaevarError(
                    f"{run['path']} was swept with {key} {run['sweep'].get(key)}, {runs[0]['path']} with "
                    f"{first.get(key)}: sweep every run alike"
                )


def measured_at_s_m(run: dict, s_m: float) -> bool:
    """Whether the sweep scored every kind at GEN-2's matched scale itself (sweep_latent_scale.py's
    at_gen2_matched; older sweeps have none, and their kinds are read off their curves)."""
    points = [run["sweep"]["kinds"][kind].get("at_gen2_matched") for kind in layout.KINDS]
    return all(p is not None and abs(float(p["scale"]) - s_m) <= 1e-9 * s_m for p in points)


def relative_gains(at_1: dict, at_s_m: dict) -> tuple[dict, dict]:
    """Each kind's (metric(1) - metric(s_m)) / metric(1), and GEN-2's minus REC's and minus GEN-1's."""
    gain = {kind: (at_1[kind] - at_s_m[kind]) / at_1[kind] for kind in layout.KINDS}
    return gain, {
        "gen2_minus_rec": gain["gen2"] - gain["rec"],
        "gen2_minus_gen1": gain["gen2"] - gain["gen1"],
    }


def split_run(run: dict, measured: bool = False) -> dict:
    """One run's numbers for the split: each kind's best and matched scale, the scales view's excesses, and
    each kind's relative gain at GEN-2's matched scale s_m (FID and KID)."""
    kinds = run["sweep"]["kinds"]
    for kind in layout.KINDS:  # every kind, and s = 1 in each, before any number
        _curve(run, kind, "fid")
    matched = {kind: float(kinds[kind]["matched_scale"]) for kind in layout.KINDS}
    s_m = matched["gen2"]
    scored_here = measured_at_s_m(run, s_m)  # this run scored every kind at s_m (the split may not read it)
    result = {
        "run_dir": run["run_dir"],
        "stage1_weights": run["stage1_weights"],
        "matched_scale": matched,
        "s_m": s_m,
    }
    for metric in SPLIT_METRICS:
        best = {kind: float(kinds[kind]["best_scale"][metric]) for kind in layout.KINDS}
        edges = [kind for kind in layout.KINDS if best[kind] in _curve(run, kind, metric)[0][[0, -1]]]
        at_1 = {kind: value_at(run, kind, metric, 1.0)["value"] for kind in layout.KINDS}
        linear = {kind: value_at(run, kind, metric, s_m) for kind in layout.KINDS}
        at_m = linear
        if measured:  # every kind of every run scored at s_m itself: no interpolation at all
            at_m = {
                kind: {"value": float(kinds[kind]["at_gen2_matched"][metric]), "between": None}
                for kind in at_m
            }
        result[metric] = {
            "best_scale": best,
            "best_at_grid_edge": edges,  # not an optimum: the curve may fall further outside the grid
            # the scales view: GEN-2's optimum is s_m * s*_REC if its loss and the generic effect compound
            "gen2_excess": best["gen2"] / matched["gen2"] - best["rec"],
            "gen1_excess": best["gen1"] / matched["gen1"] - best["rec"],
            "at_1": at_1,
            "at_s_m": {kind: at_m[kind]["value"] for kind in layout.KINDS},
            "interpolated_between": {kind: at_m[kind]["between"] for kind in layout.KINDS},
            # GEN-2's own matched point, scored at s_m exactly: the interpolation's check, not used above
            "gen2_measured_at_s_m": float(kinds["gen2"]["matched"][metric]),
            "linear_at_s_m": {k: linear[k]["value"] for k in layout.KINDS},
            # where this run scored every kind at s_m: each kind's score there (the interpolations' check)
            "scored_at_s_m": {k: float(kinds[k]["at_gen2_matched"][metric]) for k in layout.KINDS}
            if scored_here
            else None,
            "read_at_s_m": measured,  # the gains above from scores at s_m, not interpolated
        }
        # the gains view: relative, as the kinds' levels differ
        gain, differences = relative_gains(at_1, result[metric]["at_s_m"])
        result[metric].update(gain=gain, **differences)
        scored = result[metric]["scored_at_s_m"]
        if scored is not None:  # this run's gains from its scores at s_m, whatever the split reads
            gain, differences = relative_gains(at_1, scored)
            result[metric]["scored_gain"] = dict(gain, **differences)
        # the same gains with each kind read off a parabola (value_at_curved), checked on GEN-2 as above
        curve = {kind: value_at_curved(run, kind, metric, s_m) for kind in layout.KINDS}
        curved = {kind: curve[kind]["value"] for kind in layout.KINDS}
        gain, differences = relative_gains(at_1, curved)
        result[metric]["curved"] = {
            "at_s_m": curved,
            "through": {kind: curve[kind]["through"] for kind in layout.KINDS},
            "gain": gain,
            **differences,
        }
    return result


def split_gain(runs: Sequence[dict]) -> dict:
    """GEN-2's gain split into its generic and its second-stage part over runs of different first-stage seeds
    (load_sweep), every quantity paired over the runs (paired_difference: against 0). Two views, FID and KID:
    scales, s*_kind / s_matched,kind - s*_REC for GEN-2 and GEN-1; gains at GEN-2's matched scale s_m,
    (metric(1) - metric(s_m)) / metric(1) for each kind, and GEN-2's minus REC's and minus GEN-1's."""
    check_split_runs(runs)
    # the runs alike: read at s_m where every run scored every kind there, else all interpolated
    measured = all(
        measured_at_s_m(run, float(run["sweep"]["kinds"]["gen2"]["matched_scale"])) for run in runs
    )
    per_run = [split_run(run, measured) for run in runs]
    views = {}
    for metric in SPLIT_METRICS:
        rows = [r[metric] for r in per_run]
        views[metric] = {
            "scales": {
                "best": {kind: mean_sd([r["best_scale"][kind] for r in rows]) for kind in layout.KINDS},
                "gen2_excess": paired_difference([r["gen2_excess"] for r in rows]),
                "gen1_excess": paired_difference([r["gen1_excess"] for r in rows]),
            },
            "gains": {
                **{kind: paired_difference([r["gain"][kind] for r in rows]) for kind in layout.KINDS},
                "gen2_minus_rec": paired_difference([r["gen2_minus_rec"] for r in rows]),
                "gen2_minus_gen1": paired_difference([r["gen2_minus_gen1"] for r in rows]),
            },
            "gains_curved": {
                **{
                    kind: paired_difference([r["curved"]["gain"][kind] for r in rows])
                    for kind in layout.KINDS
                },
                "gen2_minus_rec": paired_difference([r["curved"]["gen2_minus_rec"] for r in rows]),
                "gen2_minus_gen1": paired_difference([r["curved"]["gen2_minus_gen1"] for r in rows]),
            },
            # each interpolation's error where it can be checked: GEN-2 scored at s_m exactly
            "gen2_check": {
                "linear_minus_measured": mean_sd(
                    [r["linear_at_s_m"]["gen2"] - r["gen2_measured_at_s_m"] for r in rows]
                ),
                "curved_minus_measured": mean_sd(
                    [r["curved"]["at_s_m"]["gen2"] - r["gen2_measured_at_s_m"] for r in rows]
                ),
            },
        }
    interpolated = [
        f"{r['run_dir']} {kind}"
        for r in per_run
        for kind in layout.KINDS
        if r["fid"]["interpolated_between"][kind]
    ]
    edges = sorted(
        {
            f"{r['run_dir']} {kind} ({m})"
            for r in per_run
            for m in SPLIT_METRICS
            for kind in r[m]["best_at_grid_edge"]
        }
    )
    return {
        "dataset": runs[0]["sweep"].get("dataset"),
        "num_samples": runs[0]["sweep"].get("num_samples"),
        "runs": [run["run_dir"] for run in runs],
        "s_m": mean_sd([r["s_m"] for r in per_run]),
        "matched_scale": {
            kind: mean_sd([r["matched_scale"][kind] for r in per_run]) for kind in layout.KINDS
        },
        "views": views,
        "per_run": per_run,
        "interpolated": interpolated,  # "run kind" where s_m lies between grid points (FID's and KID's alike)
        "best_at_grid_edge": edges,
    }
