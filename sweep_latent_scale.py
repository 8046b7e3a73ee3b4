"""The latent-scale sweep: each kind's codes multiplied by s, decoded and scored, for s over a grid.

    python sweep_latent_scale.py --run-dir runs/cifar10
    python sweep_latent_scale.py --run-dir runs/cifar10 --quick       # 200 samples, 6 scales: CPU minutes
    python sweep_latent_scale.py --run-dir R --stage2-epoch 5         # GEN-2 of the copy kept after epoch 5
    python sweep_latent_scale.py --run-dir R --stage1-epoch 20        # the first stage kept after epoch 20
    python sweep_latent_scale.py --run-dir R --scales auto            # each kind's grid brackets its optimum

Renormalization multiplies the codes by about one number before decoding. If the paper's mechanism is
right, GEN-2's best scale is above 1 while REC's and GEN-1's stay near 1; every kind's best scale above 1
shows a generic effect of more latent spread, which may sit beside the mechanism (aggregate_runs.py --split
tells them apart). This draws the curve around the rule's point.

Codes (Run.codes, seed SEED: the codes generate.py decodes): REC's z = mu + sigma * eps of NUM_SAMPLES
evaluation images, GEN-1's N(0, I) draws, GEN-2's second-stage codes. Each scaled set is scored against
NUM_SAMPLES random test images as compute_fid.py scores a run (Run.score: FID, KID, precision, recall),
and its codes against the encoded test codes z = mu + sigma * eps (the latent Frechet distance). Each kind's
rule point (generate.py's _renorm images, for the same RENORM_THRESHOLD) is scored too, and the codes scaled
to the encoded test codes' mean std (the matched point). Marked on the figure: the scale the authors' rule
applies (GEN-2, and GEN-1 where their gate opens) and the matched scale.

--scales auto gives each kind its own grid (vaevar/scale_search.py): AUTO_START, extended a step beyond the
edge that holds the FID minimum until FID has risen on both sides of it (past AUTO_MIN_SCALE or AUTO_MAX_SCALE:
a one-line error), then the step between the minimum and a neighbour halved, up to AUTO_REFINE_ROUNDS times,
where the two differ by less than the noise. The noise: s = 1 and the FID minimum (each kind's) scored again
with codes of NOISE_SEED (new eps or draws, the same model and reference), the SD of the two seeds' difference
beside each FID - FID(1). Every point also holds the images' pixel variance ratio (variance_analysis.py's: their
total per-pixel variance over the evaluation test images'), and each kind the scale where it reaches 1.

A stopped sweep resumes: each point is kept in scale_sweep/points/ as it is scored, with the settings it was
scored under, and a rerun of the same command reads those instead of scoring them again. POINTS_FROM puts
an earlier sweep.json's points there (a kept copy, its run folder gone), so that only new points are scored:
its stages' digests, sample count, seeds and method must be this sweep's.

Outputs in RUN_DIR/scale_sweep/ (scale_sweep_stage1_epoch_<E>/, scale_sweep_stage2_epoch_<E>/ for kept stages): sweep.json,
sweep.md (a table per kind) and sweep.png (a panel per measure, a line per kind).
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import dataclasses
import os
import time

import numpy as np

from vaevar import cli, data, errors, files, layout, renormalization, scale_search
from vaevar.run import Run
from vaevar.variance_measures import latent_frechet_distances, total_variance

DATASET = "cifar10"  # the run's data set (RUN_DIR defaults to runs/<dataset>)
DATA_PATH = None  # local data file; default the first stage's (else VAEVAR_DATA_DIR, else tfds)
RUN_DIR = None  # default: runs/<dataset>
STAGE2_EPOCH = 0  # GEN-2 from the second stage kept after epoch E (--keep-models-at); 0: the final one
STAGE1_EPOCH = 0  # the first stage kept after epoch E, GEN-2 from its own second stage; 0: the final one
SCALES = "0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6"  # the grid of s, comma-separated, each > 0; or auto
AUTO_START = "0.6,0.8,1.0,1.2,1.4,1.6"  # --scales auto: the first grid; it extends by its edge's step
AUTO_MIN_SCALE = 0.2  # --scales auto: the lowest scale it may add; a FID minimum still there is an error
AUTO_MAX_SCALE = 3.0  # --scales auto: the highest scale it may add; a FID minimum still there is an error
AUTO_REFINE_ROUNDS = 2  # --scales auto: halvings of the step beside the minimum where FIDs are within noise
KINDS = "rec,gen1,gen2"  # which kinds to sweep (gen2 needs a second stage)
NUM_SAMPLES = 1000  # images per point, and test images in the reference
RENORM_THRESHOLD = 0.25  # the rule's gate (generate.py's): GEN-2's variance loss / MSE above this; 0: always
SEED = 0  # the codes: generate.py's for the same seed
NOISE_SEED = None  # the second sample seed, s = 1 and each FID minimum scored again with it; default SEED + 1
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS; see vaevar/fid/weights.py
FRECHET_METHOD = "eig"  # eig: TTUR's distance from eigenvalues, ~10x faster per point | sqrtm: TTUR's own
POINTS_FROM = None  # an earlier sweep.json of the same stages and settings: its points read back, not scored
QUICK = False  # 200 samples per point and 6 scales (0.6 ... 1.6): a smoke run, not a measurement

_QUICK_SETTINGS = {"num_samples": 200, "scales": "0.6,0.8,1.0,1.2,1.4,1.6"}
# the figure's panels, in order
_MEASURES = ("fid", "kid", "precision", "recall", "latent_fd", "pixel_variance_ratio")
_LOWER_IS_BETTER = ("fid", "kid", "latent_fd")


def parse_scales(text, flag="--scales"):
    """The grid, in the order given: positive, distinct numbers."""
    try:
        scales = [float(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise errors.VaevarError(f"{flag} {text!r}: give comma-separated numbers, e.g. 0.8,1.0,1.2") from None
    if not scales:
        raise errors.VaevarError(f"{flag} is empty: give at least one scale, e.g. 0.8,1.0,1.2")
    if any(s <= 0 for s in scales):
        raise errors.VaevarError(f"{flag} {text}: every scale must be > 0")
    if len(set(scales)) != len(scales):
        raise errors.VaevarError(f"{flag} {text}: a scale is given twice")
    return scales


def check_settings(args):
    if args.quick:
        for name, value in _QUICK_SETTINGS.items():
            if getattr(args, name) == globals()[name.upper()]:
                setattr(args, name, value)
    cli.require_positive(
        args,
        "num_samples",
        "stage2_epoch",
        "stage1_epoch",
        "renorm_threshold",
        allow_zero=("stage2_epoch", "stage1_epoch", "renorm_threshold"),
    )
    args.scales = "auto" if str(args.scales).strip() == "auto" else parse_scales(args.scales)
    args.auto = scale_search.AutoScales(
        start=tuple(parse_scales(args.auto_start, "--auto-start")),
        min_scale=args.auto_min_scale,
        max_scale=args.auto_max_scale,
        refine_rounds=args.auto_refine_rounds,
    )
    if args.noise_seed is None:
        args.noise_seed = args.seed + 1
    if args.noise_seed == args.seed:
        raise errors.VaevarError(f"--noise-seed {args.noise_seed} is --seed's: give another sample seed")
    if args.frechet_method not in ("eig", "sqrtm"):
        raise errors.VaevarError(f"--frechet-method {args.frechet_method!r}: use eig or sqrtm")
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in args.kinds if k not in layout.KINDS]
    if unknown or not args.kinds:
        raise errors.VaevarError(f"--kinds {','.join(args.kinds)}: use some of {', '.join(layout.KINDS)}")
    args.run_dir = layout.RunPaths.of(args.dataset, args.run_dir).root
    return args


def encoded_test_codes(run, seed):
    """The encoded test codes z = mu + sigma * eps of the evaluation images (their own noise stream)."""
    evaluation = run.evaluation()
    eps = np.random.default_rng([seed, 4]).standard_normal(evaluation["mu"].shape).astype(np.float32)
    return evaluation["mu"] + evaluation["sigma"] * eps


def mean_std(z):
    return float(np.mean(np.std(np.asarray(z, np.float64), 0)))


def scaled_images(run, z, scale):
    """The kind's codes times `scale`, decoded, as generate.py stores samples and compute_fid.py scores them."""
    return data.sample_array(run.decode((z * np.float32(scale)).astype(np.float32)))


def pixel_variance_ratio(images, data_variance):
    """The images' total per-pixel variance over the data's (data_variance: variance_measures.total_variance
    of the data): variance_analysis.py's pixel variance ratio."""
    return total_variance(images) / data_variance


def scored(run, images, codes, reference, args, weights):
    """Run.score of the images, with the latent Frechet distance of the codes they were decoded from and the
    images' pixel variance ratio. reference: {z: the encoded test codes, pixel_variance: the data's}."""
    scores = run.score(images, weights, args.num_samples, args.frechet_method)
    scores["latent_fd"] = latent_frechet_distances(reference["z"], {"codes": codes})["codes"]
    scores["pixel_variance_ratio"] = pixel_variance_ratio(images, reference["pixel_variance"])
    return scores


def noise_of(first, second, seeds, best):
    """The sampling noise from the scales scored with both sample seeds (scale_search.NOISE_DEFINITION), and
    the paired change from s = 1 to the grid's FID minimum `best` at each seed."""
    repeats = [
        {
            "scale": scale,
            **{m: [first[scale][m], second[scale][m]] for m in ("fid", "kid", "pixel_variance_ratio")},
            "second_seed_point": second[scale],
        }
        for scale in sorted(second)
    ]
    fid = scale_search.seed_noise([tuple(r["fid"]) for r in repeats])
    kid = scale_search.seed_noise([tuple(r["kid"]) for r in repeats])
    changes = [first[best]["fid"] - first[1.0]["fid"], second[best]["fid"] - second[1.0]["fid"]]
    return {
        "seeds": list(seeds),
        "repeats": repeats,
        "pairs": fid["pairs"],
        "fid_difference_sd": fid["difference_sd"],
        "fid_sd": fid["sd"],
        "kid_difference_sd": kid["difference_sd"],
        "kid_sd": kid["sd"],
        "definition": scale_search.NOISE_DEFINITION,
        "fid_best_scale": best,
        "fid_best_minus_s1": changes,  # FID(best) - FID(1) at each seed: the same codes on both sides
        # the SD of one such paired change, from its two seeds (1 degree of freedom); None at best = 1
        "fid_best_minus_s1_paired_sd": float(abs(changes[1] - changes[0]) / np.sqrt(2))
        if best != 1.0
        else None,
    }


_POINT_VERSION = 1  # raise it when a point's scoring changes: points kept by older code are scored again


def point_key(run, args, weights):
    """What a scored point depends on beyond its kind, scale and code seed: the stages' weights, the data it
    reads, the samples and the reference's draw, the FID network, method and settings, the rule's threshold
    and the scoring code's version."""
    from vaevar.fid.score import RUN_DEFAULTS

    return {
        "version": _POINT_VERSION,
        "first_stage": files.weights_digest(run.first),
        "second_stage": files.weights_digest(run.second) if run.second is not None else None,
        "inception_weights": files.file_digest(weights),
        "fid_settings": {k: v for k, v in RUN_DEFAULTS.items() if k != "num_samples"},
        "dataset": run.dataset,
        "data_path": os.path.abspath(run.data_path) if run.data_path else None,  # None: tfds' copy
        **{
            name: getattr(args, name)
            for name in ("num_samples", "seed", "frechet_method", "renorm_threshold")
        },
    }


def grid_point_name(kind, scale, seed):
    """A grid point's name in the point store: its kind, scale and code seed."""
    return f"{kind}_s{scale:.6f}_seed{seed}"


_ADDED_AFTER_SCORING = ("fid_minus_s1", "fid_minus_s1_sd", "kid_minus_s1", "kid_minus_s1_sd")


def earlier_points(sweep):
    """A sweep.json's scored points by the names sweep_kind keeps them under, as it kept them (without the
    differences from s = 1 added after)."""
    named = {}
    for kind, entry in sweep["kinds"].items():
        found = [(grid_point_name(kind, p["scale"], sweep["seed"]), p) for p in entry["points"]]
        found += [
            (grid_point_name(kind, r["scale"], sweep["noise_seed"]), r["second_seed_point"])
            for r in entry["noise"]["repeats"]
        ]
        found += [(f"{kind}_rule", entry["rule"]), (f"{kind}_matched", entry["matched"])]
        if kind != "gen2" and entry.get("at_gen2_matched") is not None:
            found.append((f"{kind}_at_gen2_matched", entry["at_gen2_matched"]))
        for name, point in found:
            named[name] = {k: v for k, v in point.items() if k not in _ADDED_AFTER_SCORING}
    return named


def put_earlier_points(path, run, args, store):
    """--points-from: the earlier sweep's points into `store`, where it holds none of its own; refused in one
    line unless that sweep swept these stages with this sweep's samples, seeds and method."""
    sweep = files.load_json(path)
    wanted = {
        "stage1_weights": files.weights_digest(run.first),
        "stage2_weights": files.weights_digest(run.second) if run.second is not None else None,
        "dataset": run.dataset,
        **{name: getattr(args, name) for name in ("num_samples", "seed", "noise_seed", "frechet_method")},
    }
    differ = [
        f"{name} {sweep.get(name)!r} (this sweep's {value!r})"
        for name, value in wanted.items()
        if sweep.get(name) != value and not (name == "stage2_weights" and sweep.get(name) is None)
    ]  # older sweeps record no stage2_weights: the first stage's digest and the settings still must agree
    if differ:
        raise errors.VaevarError(
            f"--points-from {path} was swept with {', '.join(differ)}: its points are not this sweep's; "
            f"leave --points-from out to score them"
        )
    written = store.put_missing(earlier_points(sweep))
    print(f"{written} points from {path} put in {store.folder}", flush=True)


def sweep_kind(run, kind, reference, args, weights, store, gen2_matched=None):
    """One kind: its grid (args.scales, or its own with --scales auto), s = 1 and the FID minimum again at
    the noise seed, the rule point, the matched point and, given GEN-2's matched scale, a point there (where
    aggregate_runs.py --split compares the kinds' gains). store: scale_search.PointStore (each point kept as
    it is scored, and read back by a rerun)."""
    z = run.codes(kind, args.num_samples, args.seed)
    second_z = run.codes(kind, args.num_samples, args.noise_seed)
    codes_std = mean_std(z)

    def score_point(scale, codes):
        scores = scored(run, scaled_images(run, codes, scale), codes * scale, reference, args, weights)
        return {"scale": scale, "latent_std": scale * mean_std(codes), **scores}

    def point(scale, codes, seed):
        started, read = time.time(), store.read
        scores = store.made(grid_point_name(kind, scale, seed), lambda: score_point(scale, codes))
        print(
            f"{kind} s={scale:.4g} seed {seed}: FID {scores['fid']:.2f}  KID {scores['kid']:.5f}  precision "
            f"{scores.get('precision', float('nan')):.3f}  recall {scores.get('recall', float('nan')):.3f}  "
            f"latent FD {scores['latent_fd']:.3f}  pixel variance {scores['pixel_variance_ratio']:.3f} of the "
            f"data's  ({'read back' if store.read > read else f'{time.time() - started:.0f} s'})",
            flush=True,
        )
        return scores

    first, second = {}, {}  # scale -> point, at the seed and at the noise seed; each scored once

    def fid_at(scale):
        if scale not in first:
            first[scale] = point(scale, z, args.seed)
        return first[scale]["fid"]

    def repeat(scale):  # the noise: this scale again with the noise seed's codes
        fid_at(scale)
        if scale not in second:
            second[scale] = point(scale, second_z, args.noise_seed)

    auto = None
    if args.scales == "auto":
        values = scale_search.bracket(fid_at, args.auto, f"{kind}'s FID")
        repeat(1.0)
        repeat(scale_search.lowest(values))
        seeds = (args.seed, args.noise_seed)
        threshold = noise_of(first, second, seeds, scale_search.lowest(values))["fid_difference_sd"]
        refined = scale_search.refine(fid_at, values, threshold, args.auto.refine_rounds)
        repeat(scale_search.lowest(values))  # a minimum the refinement moved is repeated too
        grid = sorted(values)
        start = {round(s, scale_search.DECIMALS) for s in args.auto.start}
        auto = {
            "extended": [s for s in grid if s not in start and s not in refined],
            "refined": refined,
            "refine_threshold": threshold,  # the noise's fid_difference_sd when the refinement ran
        }
    else:
        grid = list(args.scales)
        for scale in grid:
            fid_at(scale)
        repeat(1.0)
        repeat(scale_search.lowest({s: first[s]["fid"] for s in grid}))
    points = [first[s] for s in grid]
    best_fid = scale_search.lowest({s: first[s]["fid"] for s in grid})
    noise = noise_of(first, second, (args.seed, args.noise_seed), best_fid)

    def rule_point():
        made = run.images(kind, z, args.seed)
        rule = scored(
            run, data.sample_array(made["renormalized"]), made["z_renorm"], reference, args, weights
        )
        latent_scale = kind != "rec" or run.rule.rec_renorm == "latent"  # REC's rule is per pixel by default
        rule.update(
            applied=bool(made["applied"]),
            scale=float(np.mean(made["scale"])) if made["applied"] and latent_scale else None,
            latent_std=mean_std(made["z_renorm"]),
        )
        return rule

    def matched_point():
        matched = scored(
            run, scaled_images(run, z, matched_scale), z * matched_scale, reference, args, weights
        )
        return dict(matched, scale=matched_scale, latent_std=matched_scale * codes_std)

    rule = store.made(f"{kind}_rule", rule_point)
    best = {m: min(points, key=lambda p, m=m: p[m])["scale"] for m in _LOWER_IS_BETTER if m in points[0]}
    matched_scale = mean_std(reference["z"]) / codes_std
    matched = store.made(f"{kind}_matched", matched_point)
    at_gen2 = None
    if gen2_matched is not None:
        at_gen2 = (
            matched
            if kind == "gen2"
            else store.made(f"{kind}_at_gen2_matched", lambda: score_point(gen2_matched, z))
        )
    for p in (
        points + [rule, matched] + ([at_gen2] if at_gen2 is not None and kind != "gen2" else [])
    ):  # each change from s = 1 with the noise of such a difference beside it
        for m in ("fid", "kid"):
            p[f"{m}_minus_s1"] = p[m] - first[1.0][m]
            p[f"{m}_minus_s1_sd"] = noise[f"{m}_difference_sd"]
    by_scale = sorted(points, key=lambda p: p["scale"])
    return {
        "scales": grid,
        "auto": auto,
        "points": points,
        "rule": rule,
        "matched": matched,
        "matched_scale": matched_scale,
        "at_gen2_matched": at_gen2,  # this kind at GEN-2's matched scale (None without GEN-2)
        "best_scale": best,
        "codes_mean_std": codes_std,
        "noise": noise,
        # the hypothesis "the FID optimum sits where the pixel variance reaches the data's", read off here
        "scale_at_pixel_variance_ratio_1": scale_search.crossing(
            [p["scale"] for p in by_scale], [p["pixel_variance_ratio"] for p in by_scale]
        ),
        "pixel_variance_ratio_at_best_fid": first[best["fid"]]["pixel_variance_ratio"],
    }


def _number(value, form):
    return "-" if value is None else format(value, form)


def write_table(result, path):
    lines = [
        f"# Latent-scale sweep: {result['run_dir']}",
        "",
        f"{result['num_samples']} samples per point against {result['num_samples']} test images, seed "
        f"{result['seed']} (noise: seed {result['noise_seed']}); encoded test codes' mean std "
        f"{result['test_codes_mean_std']:.3f}. Pixel variance: the images' total per-pixel variance over the "
        f"{result['num_samples']} evaluation test images' ({result['data_pixel_variance']:.3f}).",
    ]
    if result["scales"] == "auto":
        auto = result["auto"]
        lines += [
            "",
            f"--scales auto: from {', '.join(f'{s:g}' for s in auto['start'])}, extended within "
            f"{auto['min_scale']:g} ... {auto['max_scale']:g} until FID rose on both sides of its minimum, then "
            f"up to {auto['refine_rounds']} halvings beside it where FIDs differed by less than the noise.",
        ]
    for kind, entry in result["kinds"].items():
        rule, noise = entry["rule"], entry["noise"]
        rule_scale = (
            f"{rule['scale']:.3f}" if rule["scale"] is not None else "per pixel" if rule["applied"] else "-"
        )
        repeats = "; ".join(
            f"s = {r['scale']:.4g}: {r['fid'][0]:.2f} / {r['fid'][1]:.2f}" for r in noise["repeats"]
        )
        lines += [
            "",
            f"## {kind}",
            "",
            f"Matched scale {entry['matched_scale']:.3f}; the rule's scale {rule_scale} "
            f"({'applied' if rule['applied'] else 'not applied: the gate is closed'}); best scale by FID "
            f"{entry['best_scale']['fid']:.4g}, by KID {entry['best_scale']['kid']:.4g}. The pixel variance "
            f"reaches the data's at s = {_number(entry['scale_at_pixel_variance_ratio_1'], '.3f')} (interpolated; "
            f"- : not within the grid); at the FID optimum it is {entry['pixel_variance_ratio_at_best_fid']:.3f}.",
            "",
            f"Noise, FID at seeds {noise['seeds'][0]} / {noise['seeds'][1]}: {repeats}. SD of the difference "
            f"between two seeds' FIDs {_number(noise['fid_difference_sd'], '.2f')} ({noise['pairs']} scales; "
            f"the ± of FID - FID(1)); FID(best) - FID(1) "
            f"{' / '.join(f'{c:.2f}' for c in noise['fid_best_minus_s1'])}, its paired SD "
            f"{_number(noise['fid_best_minus_s1_paired_sd'], '.2f')}.",
            "",
            "| s | latent std | FID | FID - FID(1) | KID x 1000 | precision | recall | latent FD | pixel variance "
            "/ data's |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        rows = sorted(entry["points"], key=lambda p: p["scale"])
        rows += [dict(rule, scale_label="rule"), dict(entry["matched"], scale_label="matched")]
        if entry.get("at_gen2_matched") is not None and kind != "gen2":
            rows.append(dict(entry["at_gen2_matched"], scale_label="GEN-2's matched"))
        for p in rows:
            label = p.get("scale_label") or f"{p['scale']:.4g}"
            lines.append(
                f"| {label} | {p['latent_std']:.3f} | {p['fid']:.2f} | {p['fid_minus_s1']:+.2f} ± "
                f"{_number(p['fid_minus_s1_sd'], '.2f')} | {1000 * p['kid']:.2f} ± {1000 * p['kid_std']:.2f} | "
                f"{p.get('precision', float('nan')):.3f} | {p.get('recall', float('nan')):.3f} | "
                f"{p['latent_fd']:.3f} | {p['pixel_variance_ratio']:.3f} |"
            )
    files.save_text(path, "\n".join(lines) + "\n")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = -(-len(_MEASURES) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    axes = axes.ravel()
    colours = {"rec": "tab:blue", "gen1": "tab:orange", "gen2": "tab:green"}
    for axis, measure in zip(axes, _MEASURES):
        for kind, entry in result["kinds"].items():
            points = sorted((p for p in entry["points"] if measure in p), key=lambda p: p["scale"])
            if not points:
                continue
            colour = colours[kind]
            axis.plot(
                [p["scale"] for p in points],
                [p[measure] for p in points],
                "o-",
                ms=3,
                color=colour,
                label=kind,
            )
            axis.axvline(entry["matched_scale"], color=colour, ls=":", lw=1)
            if measure in entry["matched"]:
                axis.plot([entry["matched_scale"]], [entry["matched"][measure]], "D", ms=5, color=colour)
            rule = entry["rule"]
            if rule["scale"] is not None and measure in rule:
                axis.axvline(rule["scale"], color=colour, ls="--", lw=1)
                axis.plot([rule["scale"]], [rule[measure]], "*", ms=10, color=colour)
            repeats = [r for r in entry["noise"]["repeats"] if measure in r]
            if repeats:  # the noise seed's values: open circles
                axis.plot(
                    [r["scale"] for r in repeats],
                    [r[measure][1] for r in repeats],
                    "o",
                    ms=6,
                    mfc="none",
                    color=colour,
                )
            if measure == "pixel_variance_ratio" and entry["scale_at_pixel_variance_ratio_1"] is not None:
                axis.plot([entry["scale_at_pixel_variance_ratio_1"]], [1.0], "x", ms=8, color=colour)
        if measure == "pixel_variance_ratio":
            axis.axhline(1.0, color="black", lw=1, ls="--")
        axis.set_title(measure.replace("_", " "))
        axis.set_xlabel("latent scale s")
    for axis in axes[len(_MEASURES) :]:
        axis.set_visible(False)
    axes[0].legend(fontsize=8)
    figure.suptitle(
        f"{os.path.basename(os.path.normpath(result['run_dir']))}: dashed, the rule's scale (star: its "
        f"images); dotted, the encoded codes' std (diamond); open circles, the noise seed; x, pixel variance 1",
        fontsize=9,
    )
    figure.tight_layout()
    with files.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)


def main(argv=None):
    args = check_settings(cli.parse_constants(globals(), __doc__, argv))
    backend.set_seed(args.seed)
    print(backend.runtime_line(), flush=True)
    from vaevar.fid.weights import resolve_weights

    weights = resolve_weights(args.inception_weights)
    run = Run.load(
        args.run_dir,
        args.stage2_epoch,
        dataset=args.dataset,
        data_path=args.data_path,
        evaluation_count=args.num_samples,
        rule=renormalization.RenormalizationSettings(renorm_threshold=args.renorm_threshold),
        stage1_epoch=args.stage1_epoch,
    )
    if "gen2" in args.kinds and run.second is None:
        raise errors.VaevarError(f"{args.run_dir} has no second stage: train it, or pass --kinds rec,gen1")
    reference = {
        "z": encoded_test_codes(run, args.seed),
        # the pixel variance ratio's denominator: variance_analysis.py's, the evaluation test images
        "pixel_variance": total_variance(run.evaluation()["images"]),
    }
    result = {
        "run_dir": args.run_dir,
        "dataset": run.dataset,
        "stage1_epoch": args.stage1_epoch,
        "stage2_epoch": args.stage2_epoch,
        # which stages were swept, so that a copy of this file, its run folder gone, still says
        "stage1_weights": files.weights_digest(run.first),
        "stage2_weights": files.weights_digest(run.second) if run.second is not None else None,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "noise_seed": args.noise_seed,
        "scales": args.scales,
        "auto": dataclasses.asdict(args.auto) if args.scales == "auto" else None,
        "frechet_method": args.frechet_method,
        "test_codes_mean_std": mean_std(reference["z"]),
        "data_pixel_variance": reference["pixel_variance"],
        "gate_ratio": run.gate_ratio(args.seed),
        "rule": dataclasses.asdict(run.rule),
        "renorm_target": run.renorm_target,
        "kinds": {},
    }
    paths = layout.RunPaths(args.run_dir, args.stage2_epoch, args.stage1_epoch)
    store = scale_search.PointStore(paths.sweep_file("points"), point_key(run, args, weights))
    if args.points_from:
        put_earlier_points(args.points_from, run, args, store)
    gen2_matched = None  # every kind is scored there too: the split reads their gains, not interpolates
    if "gen2" in args.kinds:
        gen2_matched = mean_std(reference["z"]) / mean_std(run.codes("gen2", args.num_samples, args.seed))
    for kind in args.kinds:
        result["kinds"][kind] = sweep_kind(run, kind, reference, args, weights, store, gen2_matched)
    if store.read:
        print(f"{store.read} points read back from {store.folder} (scored by an earlier, stopped sweep)")
    os.makedirs(paths.scale_sweep, exist_ok=True)
    files.save_json(paths.sweep_file("sweep.json"), result)
    write_table(result, paths.sweep_file("sweep.md"))
    plot(result, paths.sweep_file("sweep.png"))
    for kind, entry in result["kinds"].items():
        print(
            f"{kind}: best scale by FID {entry['best_scale']['fid']:.4g}, by KID {entry['best_scale']['kid']:.4g}; "
            f"matched {entry['matched_scale']:.3f}; rule {entry['rule']['scale']}; pixel variance reaches the "
            f"data's at {_number(entry['scale_at_pixel_variance_ratio_1'], '.3f')}; SD of a seed-to-seed FID "
            f"difference {_number(entry['noise']['fid_difference_sd'], '.2f')}"
        )
    print(f"sweep in {paths.scale_sweep}")


if __name__ == "__main__":
    errors.run_main(main)
