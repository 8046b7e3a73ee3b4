"""The latent-scale sweep: each kind's codes multiplied by s, decoded and scored, for s over a grid.

    python sweep_latent_scale.py --run-dir runs/cifar10
    python sweep_latent_scale.py --run-dir runs/cifar10 --quick       # 200 samples, 6 scales: CPU minutes
    python sweep_latent_scale.py --run-dir R --stage2-epoch 5         # GEN-2 of the copy kept after epoch 5

Renormalization multiplies the codes by about one number before decoding. If the paper's mechanism is
right, GEN-2's best scale is above 1 while REC's and GEN-1's stay near 1; if every kind's best scale is
above 1, the gain is a generic effect of more latent spread. This draws the curve around the rule's point.

Codes (Run.codes, seed SEED: the codes generate.py decodes): REC's z = mu + sigma * eps of NUM_SAMPLES
evaluation images, GEN-1's N(0, I) draws, GEN-2's second-stage codes. Each scaled set is scored against
NUM_SAMPLES random test images as compute_fid.py scores a run (Run.score: FID, KID, precision, recall),
and its codes against the encoded test codes z = mu + sigma * eps (the latent Frechet distance). Each kind's
rule point (generate.py's _renorm images, for the same RENORM_THRESHOLD) is scored too, and the codes scaled
to the encoded test codes' mean std (the matched point). Marked on the figure: the scale the authors' rule
applies (GEN-2, and GEN-1 where their gate opens) and the matched scale.

Outputs in RUN_DIR/scale_sweep/ (scale_sweep_stage2_epoch_<E>/ for a kept second stage): sweep.json,
sweep.md (a table per kind) and sweep.png (a panel per measure, a line per kind).
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import dataclasses
import os
import time

import numpy as np

from vaevar import cli, data, errors, files, layout, renormalization
from vaevar.run import Run
from vaevar.variance_measures import latent_frechet_distances

DATASET = "cifar10"  # the run's data set (RUN_DIR defaults to runs/<dataset>)
DATA_PATH = None  # local data file; default the first stage's (else VAEVAR_DATA_DIR, else tfds)
RUN_DIR = None  # default: runs/<dataset>
STAGE2_EPOCH = 0  # GEN-2 from the second stage kept after epoch E (--keep-models-at); 0: the final one
SCALES = "0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6"  # the grid of s, comma-separated, each > 0
KINDS = "rec,gen1,gen2"  # which kinds to sweep (gen2 needs a second stage)
NUM_SAMPLES = 1000  # images per point, and test images in the reference
RENORM_THRESHOLD = 0.25  # the rule's gate (generate.py's): GEN-2's variance loss / MSE above this; 0: always
SEED = 0  # the codes: generate.py's for the same seed
INCEPTION_WEIGHTS = None  # or $VAEVAR_INCEPTION_WEIGHTS; see vaevar/fid/weights.py
FRECHET_METHOD = "eig"  # eig: TTUR's distance from eigenvalues, ~10x faster per point | sqrtm: TTUR's own
QUICK = False  # 200 samples per point and 6 scales (0.6 ... 1.6): a smoke run, not a measurement

_QUICK_SETTINGS = {"num_samples": 200, "scales": "0.6,0.8,1.0,1.2,1.4,1.6"}
_MEASURES = ("fid", "kid", "precision", "recall", "latent_fd")  # the figure's panels, in order
_LOWER_IS_BETTER = ("fid", "kid", "latent_fd")


def parse_scales(text):
    """The grid, in the order given: positive, distinct numbers."""
    try:
        scales = [float(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise errors.VaevarError(
            f"--scales {text!r}: give comma-separated numbers, e.g. 0.8,1.0,1.2"
        ) from None
    if not scales:
        raise errors.VaevarError("--scales is empty: give at least one scale, e.g. 0.8,1.0,1.2")
    if any(s <= 0 for s in scales):
        raise errors.VaevarError(f"--scales {text}: every scale must be > 0")
    if len(set(scales)) != len(scales):
        raise errors.VaevarError(f"--scales {text}: a scale is given twice")
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
        "renorm_threshold",
        allow_zero=("stage2_epoch", "renorm_threshold"),
    )
    args.scales = parse_scales(args.scales)
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


def scored(run, images, codes, reference_z, args, weights):
    """Run.score of the images, with the latent Frechet distance of the codes they were decoded from."""
    scores = run.score(images, weights, args.num_samples, args.frechet_method)
    scores["latent_fd"] = latent_frechet_distances(reference_z, {"codes": codes})["codes"]
    return scores


def sweep_kind(run, kind, z, reference_z, args, weights):
    """Every point of the grid for one kind, its rule point and the two marked scales."""
    codes_std = mean_std(z)
    points = []
    for scale in args.scales:
        started = time.time()
        scores = scored(run, scaled_images(run, z, scale), z * scale, reference_z, args, weights)
        points.append({"scale": scale, "latent_std": scale * codes_std, **scores})
        print(
            f"{kind} s={scale:.3g}: FID {scores['fid']:.2f}  KID {scores['kid']:.5f}  precision "
            f"{scores.get('precision', float('nan')):.3f}  recall {scores.get('recall', float('nan')):.3f}  "
            f"latent FD {scores['latent_fd']:.3f}  ({time.time() - started:.0f} s)",
            flush=True,
        )
    made = run.images(kind, z, args.seed)
    rule = scored(run, data.sample_array(made["renormalized"]), made["z_renorm"], reference_z, args, weights)
    latent_scale = kind != "rec" or run.rule.rec_renorm == "latent"  # REC's rule is per pixel by default
    rule.update(
        applied=bool(made["applied"]),
        scale=float(np.mean(made["scale"])) if made["applied"] and latent_scale else None,
        latent_std=mean_std(made["z_renorm"]),
    )
    best = {m: min(points, key=lambda p, m=m: p[m])["scale"] for m in _LOWER_IS_BETTER if m in points[0]}
    matched_scale = mean_std(reference_z) / codes_std
    matched = scored(run, scaled_images(run, z, matched_scale), z * matched_scale, reference_z, args, weights)
    matched.update(scale=matched_scale, latent_std=matched_scale * codes_std)
    return {
        "points": points,
        "rule": rule,
        "matched": matched,
        "matched_scale": matched_scale,
        "best_scale": best,
        "codes_mean_std": codes_std,
    }


def write_table(result, path):
    lines = [
        f"# Latent-scale sweep: {result['run_dir']}",
        "",
        f"{result['num_samples']} samples per point against {result['num_samples']} test images, seed "
        f"{result['seed']}; encoded test codes' mean std {result['test_codes_mean_std']:.3f}.",
    ]
    for kind, entry in result["kinds"].items():
        rule = entry["rule"]
        rule_scale = (
            f"{rule['scale']:.3f}" if rule["scale"] is not None else "per pixel" if rule["applied"] else "-"
        )
        lines += [
            "",
            f"## {kind}",
            "",
            f"Matched scale {entry['matched_scale']:.3f}; the rule's scale {rule_scale} "
            f"({'applied' if rule['applied'] else 'not applied: the gate is closed'}); best scale by FID "
            f"{entry['best_scale']['fid']:.3g}, by KID {entry['best_scale']['kid']:.3g}.",
            "",
            "| s | latent std | FID | KID x 1000 | precision | recall | latent FD |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = sorted(entry["points"], key=lambda p: p["scale"])
        rows += [dict(rule, scale_label="rule"), dict(entry["matched"], scale_label="matched")]
        for p in rows:
            label = p.get("scale_label") or f"{p['scale']:.3g}"
            lines.append(
                f"| {label} | {p['latent_std']:.3f} | {p['fid']:.2f} | {1000 * p['kid']:.2f} ± "
                f"{1000 * p['kid_std']:.2f} | {p.get('precision', float('nan')):.3f} | "
                f"{p.get('recall', float('nan')):.3f} | {p['latent_fd']:.3f} |"
            )
    files.save_text(path, "\n".join(lines) + "\n")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(_MEASURES), figsize=(3.4 * len(_MEASURES), 3.2))
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
        axis.set_title(measure.replace("_", " "))
        axis.set_xlabel("latent scale s")
    axes[0].legend(fontsize=8)
    figure.suptitle(
        f"{os.path.basename(os.path.normpath(result['run_dir']))}: dashed, the rule's scale (star: its "
        f"images); dotted, the encoded codes' std (diamond)",
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
    )
    if "gen2" in args.kinds and run.second is None:
        raise errors.VaevarError(f"{args.run_dir} has no second stage: train it, or pass --kinds rec,gen1")
    reference_z = encoded_test_codes(run, args.seed)
    result = {
        "run_dir": args.run_dir,
        "dataset": run.dataset,
        "stage2_epoch": args.stage2_epoch,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "scales": args.scales,
        "frechet_method": args.frechet_method,
        "test_codes_mean_std": mean_std(reference_z),
        "gate_ratio": run.gate_ratio(args.seed),
        "rule": dataclasses.asdict(run.rule),
        "renorm_target": run.renorm_target,
        "kinds": {},
    }
    for kind in args.kinds:
        z = run.codes(kind, args.num_samples, args.seed)
        result["kinds"][kind] = sweep_kind(run, kind, z, reference_z, args, weights)
    paths = layout.RunPaths(args.run_dir, args.stage2_epoch)
    os.makedirs(paths.scale_sweep, exist_ok=True)
    files.save_json(paths.sweep_file("sweep.json"), result)
    write_table(result, paths.sweep_file("sweep.md"))
    plot(result, paths.sweep_file("sweep.png"))
    for kind, entry in result["kinds"].items():
        print(
            f"{kind}: best scale by FID {entry['best_scale']['fid']:.3g}, by KID {entry['best_scale']['kid']:.3g}; "
            f"matched {entry['matched_scale']:.3f}; rule {entry['rule']['scale']}"
        )
    print(f"sweep in {paths.scale_sweep}")


if __name__ == "__main__":
    errors.run_main(main)
