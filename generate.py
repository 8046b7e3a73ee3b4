"""Generate REC, GEN-1 and GEN-2 samples, each with and without variance
renormalization, as PNG grids and sample arrays. The authors' protocol
(asperti/BalancingVAE) by default.

    python generate.py --dataset cifar10

Evaluation images: NUM_SAMPLES test images drawn at random (seed 0, the same
set compute_fid.py uses as its reference; never a prefix of a sorted source).
REC:   evaluation images -> encoder -> z = mu + sigma * eps (their `reconstruct`;
       REC_CODE mean decodes mu) -> decoder.
GEN-1: z ~ N(0, I) -> decoder.
GEN-2: u ~ N(0, I) -> second-stage decoder -> z -> decoder.
Renormalized ("_renorm"): the authors' rule, written out once in
docs/protocol.md ("The authors' protocol": REC renormalization, adjust, the
gate, GEN-1 and GEN-2 renormalization); the flags REC_RENORM ... GEN2_RESCALE
choose among its variants, and renormalization.renormalize_kind applies it. When
the gate stays closed the renormalized file equals the plain one
(recorded in summary.json).

Outputs in RUN_DIR/samples/: <kind>.npz and <kind>_renorm.npz (key
'images', NHWC: float16 in [0, 1] by default, which compute_fid.py scores
unrounded, as the authors score float samples; rounding to uint8 moved a
real run's FIDs by 0.3 and 1.3, results/fid_rounding; SAMPLE_DTYPE uint8 writes
uint8), <kind>.png and <kind>_renorm.png (8x8 grids),
<kind>_side_by_side.png (same seed, left plain, right renormalized: the
paper's Fig. 6), latents.npz (every z batch) and summary.json. Without a
second stage, GEN-2 is skipped with a message.
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os
import time

import numpy as np

from vaevar import cli, data, errors, files, image_files, layout, renormalization, samplers
from vaevar.grids import image_grid, interleave, save_png, side_by_side
from vaevar.run import Run
from vaevar.variance_measures import total_variance

DATASET = "cifar10"  # the data set the run was trained on
DATA_PATH = None  # local data file; default the first stage's (else VAEVAR_DATA_DIR, else tfds)
RUN_DIR = None  # default: runs/<dataset>
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back, as the authors' data
NUM_SAMPLES = 10000  # per kind; FID uses 10k
REC_SPLIT = "test"  # the REC inputs (and adjust's encodings): NUM_SAMPLES random test images | train
REC_CODE = "sampled"  # sampled: decode mu + sigma * eps (the authors') | mean: decode mu
REC_RENORM = "pixel"  # pixel: the authors' per-pixel rescaling | latent: rescale z like GEN-1
RENORM_TARGET = "authors"  # authors (sigma: their quirk) | variance_law (sigma^2) | unit | measured
RENORM_MODE = "global"  # global | per_dim
RENORM_THRESHOLD = 0.25  # the gate: renormalize only if stage 2's variance loss / MSE exceeds this; 0: always
GEN1_RENORM = "gated"  # gated: GEN-1 too only when GEN-2's gate opens (the authors' adjust2) | always
GEN2_RESCALE = "batch"  # batch: each batch of 100 codes to the target (theirs) | whole: one scale for all
SAMPLE_DTYPE = "float16"  # float16: [0, 1], scored unrounded (the authors') | uint8: half the disk, moves FID
SAMPLERS = ""  # also these ex-post samplers, comma-separated: gauss, gmm10, gen2_perdim (samplers.py)
GRID = 8  # grids are GRID x GRID
BATCH_SIZE = 500  # images per encoder/decoder call
SEED = 0  # latent draws and the images shown in the grids
STAGE2_EPOCH = 0  # GEN-2 from the stage 2 kept after epoch E (--keep-models-at): samples_stage2_epoch_<E>/
STAGE1_EPOCH = 0  # the stage 1 kept after epoch E, GEN-2 from its own stage 2: samples_stage1_epoch_<E>/
QUICK = False  # 1000 samples


def check_settings(args):
    data.dataset(args.dataset)
    if args.quick and args.num_samples == NUM_SAMPLES:
        args.num_samples = data.QUICK_SETTINGS["samples"]
    cli.require_positive(
        args,
        "num_samples",
        "grid",
        "batch_size",
        "renorm_threshold",
        "stage2_epoch",
        "stage1_epoch",
        allow_zero=("renorm_threshold", "stage2_epoch", "stage1_epoch"),
    )
    for flag, value, choices in (
        ("rec-split", args.rec_split, ("test", "train")),
        ("rec-code", args.rec_code, ("sampled", "mean")),
        ("rec-renorm", args.rec_renorm, ("pixel", "latent")),
        ("renorm-target", args.renorm_target, renormalization.RENORM_TARGETS),
        ("renorm-mode", args.renorm_mode, ("global", "per_dim")),
        ("gen1-renorm", args.gen1_renorm, ("gated", "always")),
        ("gen2-rescale", args.gen2_rescale, ("batch", "whole")),
        ("sample-dtype", args.sample_dtype, ("float16", "uint8")),
    ):
        if value not in choices:
            raise errors.VaevarError(f"unknown --{flag} {value!r}: use {' or '.join(choices)}")
    args.run_dir = layout.RunPaths.of(args.dataset, args.run_dir).root
    return args


def save_kind(paths, kind, plain_float, renormed_float, originals, args):
    """The kind's two sample arrays, its two grids and the side-by-side grid."""
    plain, renormed = data.to_uint8(plain_float), data.to_uint8(renormed_float)
    files.save_npz(
        paths.sample(kind),
        compress=False,
        images=data.sample_array(plain_float, args.sample_dtype),
    )
    files.save_npz(
        paths.sample(f"{kind}_renorm"),
        compress=False,
        images=data.sample_array(renormed_float, args.sample_dtype),
    )
    # a seeded spread over the set (REC keeps a class-sorted source's order), drawn from the
    # kind's own count: REC has as many as the test split holds, maybe fewer than NUM_SAMPLES
    cells = args.grid * args.grid
    shown = image_files.seeded_subset(len(plain), cells, args.seed)
    if kind == "rec":
        pairs_shown = image_files.seeded_subset(len(plain), cells // 2, args.seed)  # original, reconstruction
        for name, images in (("rec", plain), ("rec_renorm", renormed)):
            save_png(
                paths.sample(name, "png"),
                image_grid(
                    interleave(originals[pairs_shown], images[pairs_shown], args.grid, args.grid),
                    args.grid,
                    args.grid,
                ),
            )
    else:
        save_png(paths.sample(kind, "png"), image_grid(plain[shown], args.grid, args.grid))
        save_png(paths.sample(f"{kind}_renorm", "png"), image_grid(renormed[shown], args.grid, args.grid))
    save_png(
        paths.sample(f"{kind}_side_by_side", "png"),
        side_by_side(plain[shown], renormed[shown], args.grid, args.grid),
    )


def write_samplers(args, paths, gen2_codes, decode, data_variance, latent_arrays):
    """Samples of each ex-post sampler in SAMPLERS: <name>.npz, <name>.png; returns their summary rows."""
    latents_path = paths.latents
    if not os.path.exists(latents_path):
        raise errors.VaevarError(
            f"the samplers fit the encoded training codes in {latents_path}: run train_second_stage.py first"
        )
    with np.load(latents_path) as stored:
        train_mu = stored["mu"]
    z_std = files.load_json(paths.latent_stats)["z_std"]
    rows = {}
    for name in [s.strip() for s in args.samplers.split(",") if s.strip()]:
        started = time.time()
        z = samplers.sampler_codes(name, args.num_samples, args.seed, train_mu, z_std, gen2_codes)
        images = decode(z)
        seconds = time.time() - started
        files.save_npz(
            paths.sample(name),
            compress=False,
            images=data.sample_array(images, args.sample_dtype),
        )
        shown = image_files.seeded_subset(len(images), args.grid * args.grid, args.seed)
        save_png(
            paths.sample(name, "png"),
            image_grid(data.to_uint8(images[shown]), args.grid, args.grid),
        )
        latent_arrays[name] = z
        rows[name] = {
            "pixel_variance_ratio": total_variance(images) / data_variance,
            "latent_variance": float(np.sum(np.var(z, 0))),
            "seconds": round(seconds, 2),
        }
        print(
            f"{name}: latent variance {rows[name]['latent_variance']:.1f}, pixel variance "
            f"{rows[name]['pixel_variance_ratio']:.3f} of the data's, {seconds:.1f} s"
        )
    return rows


def main(argv=None):
    args = check_settings(cli.parse_constants(globals(), __doc__, argv))
    backend.set_seed(args.seed)
    print(backend.runtime_line(), flush=True)
    started = time.time()
    run = Run.load(
        args.run_dir,
        args.stage2_epoch,
        dataset=args.dataset,
        data_path=args.data_path,
        rule=cli.settings_from(args, renormalization.RenormalizationSettings),
        renorm_target=args.renorm_target,
        evaluation_count=args.num_samples,
        rec_split=args.rec_split,
        rec_code=args.rec_code,
        jpeg_round_trip=args.jpeg_round_trip,
        batch_size=args.batch_size,
        stage1_epoch=args.stage1_epoch,
    )
    first, second = run.first, run.second
    originals = run.evaluation()["images"]
    target = run.target()
    latents = {
        "rec": run.codes("rec", len(originals), args.seed),
        "gen1": run.codes("gen1", args.num_samples, args.seed),
    }
    if second is not None:
        latents["gen2"] = run.codes("gen2", args.num_samples, args.seed)
    gen2_ratio = run.gate_ratio(args.seed)

    paths = layout.RunPaths(args.run_dir, args.stage2_epoch, args.stage1_epoch)
    summary = {
        "dataset": args.dataset,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "sample_dtype": args.sample_dtype,  # the models the samples come from (reproduce.py: current?)
        "models": {
            "stage1": files.weights_digest(first),
            "stage2": files.weights_digest(second) if second is not None else None,
        },
        "rec_split": args.rec_split,
        "rec_code": args.rec_code,
        "rec_renorm": args.rec_renorm,
        "renorm_target": args.renorm_target,
        "renorm_mode": args.renorm_mode,
        "gen1_renorm": args.gen1_renorm,
        "gen2_rescale": args.gen2_rescale,
        "variance_loss_ratio": gen2_ratio,
        "target": np.atleast_1d(target).tolist(),
        "kinds": {},
        "seconds_to_prepare": round(time.time() - started, 2),
    }  # load, encode, second-stage codes, gate
    latent_arrays = {}
    data_variance = total_variance(originals)
    for kind, z in latents.items():
        started = time.time()
        made = run.images(kind, z, args.seed)
        plain_float, renormed_float = made["plain"], made["renormalized"]
        z_renorm, scale, applied = made["z_renorm"], made["scale"], made["applied"]
        save_kind(paths, kind, plain_float, renormed_float, originals, args)
        latent_arrays[kind], latent_arrays[f"{kind}_renorm"] = z, z_renorm
        summary["kinds"][kind] = {
            "mean_latent_std": float(np.mean(z.std(0))),
            "mean_latent_std_renorm": float(np.mean(z_renorm.std(0))),
            "latent_variance": float(np.sum(np.var(z, 0))),
            "latent_variance_renorm": float(np.sum(np.var(z_renorm, 0))),
            "pixel_variance_ratio": total_variance(plain_float) / data_variance,
            "pixel_variance_ratio_renorm": total_variance(renormed_float) / data_variance,
            "renormalized": applied,
            "scale": np.atleast_1d(scale).tolist(),
            "seconds": round(time.time() - started, 2),
        }  # decoding, renormalizing, saving
        if kind == "gen2":
            summary["kinds"][kind]["variance_loss_ratio"] = gen2_ratio
        note = (
            ""
            if applied
            else f" (not applied: GEN-2's variance-loss ratio {gen2_ratio:.3f} <= {args.renorm_threshold})"
        )
        print(
            f"{kind}: latent mean std {np.mean(z.std(0)):.3f} -> {np.mean(z_renorm.std(0)):.3f}, "
            f"scale {np.mean(scale):.4f}{note}"
        )
    if args.samplers:
        summary["samplers"] = write_samplers(
            args, paths, latents.get("gen2"), run.decode, data_variance, latent_arrays
        )
    files.save_npz(paths.sample_latents, compress=False, **latent_arrays)
    files.save_json(paths.samples_summary, summary)
    print(f"samples written to {paths.samples}")


if __name__ == "__main__":
    errors.run_main(main)
