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
Renormalized ("_renorm"), as their code does it:
- REC (REC_RENORM pixel): x' = clip((x - m) * s + m, 0, 1), m the per-pixel
  mean of the reconstructions, s = mean per-pixel std of the evaluation
  images / that of the reconstructions. REC_RENORM latent rescales z instead.
- GEN-1: z * adjust; GEN-2: z * adjust / mean_j std_j(z), where (RENORM_TARGET
  authors) adjust = sqrt(mean_j(Var(mu_j) + mean(sigma_j))) over the encoded
  evaluation images. Their code adds sigma, not sigma^2 (a quirk);
  variance_law uses sigma^2, unit 1, measured the std of sampled training
  latents. GEN-2 is renormalized only when the second stage loses variance:
  (mean_j Var(mu_j) - mean_j Var(z_hat_j)) / mean((mu - z_hat)^2) >
  RENORM_THRESHOLD (0.25), z_hat its reconstruction of mu; else gen2_renorm
  equals gen2 (recorded in summary.json). RENORM_MODE per_dim rescales each
  dimension to its own target instead of one scalar.

Outputs in RUN_DIR/samples/: <kind>.npz and <kind>_renorm.npz (key
'images', NHWC: float16 in [0, 1] by default, which compute_fid.py scores
unrounded, as the authors score float samples; rounding to uint8 moved a
real run's FIDs by 0.3 and 1.3, results/fid_rounding; SAMPLE_DTYPE uint8 writes
uint8), <kind>.png and <kind>_renorm.png (8x8 grids),
<kind>_side_by_side.png (same seed, left plain, right renormalized: the
paper's Fig. 6), latents.npz (every z batch) and summary.json. Without a
second stage, GEN-2 is skipped with a message.
"""

import os

import numpy as np

import common
import data

DATASET = "cifar10"
DATA_PATH = None
RUN_DIR = None            # default: runs/<dataset>
NUM_SAMPLES = 10000       # per kind; FID uses 10k
REC_CODE = "sampled"      # sampled: decode mu + sigma * eps (the authors') | mean: decode mu
REC_RENORM = "pixel"      # pixel: the authors' per-pixel rescaling | latent: rescale z like GEN-1
RENORM_TARGET = "authors"  # authors (sigma: their quirk) | variance_law (sigma^2) | unit | measured
RENORM_MODE = "global"    # global | per_dim
RENORM_THRESHOLD = 0.25   # renormalize GEN-2 only if the second stage's variance loss / MSE exceeds this; 0: always
SAMPLE_DTYPE = "float16"  # float16: [0, 1], scored unrounded (the authors') | uint8: half the disk, moves FID
GRID = 8                  # grids are GRID x GRID
BATCH_SIZE = 500
SEED = 0
QUICK = False             # 1000 samples
KINDS = ("rec", "gen1", "gen2")
RENORM_TARGETS = ("authors", "variance_law", "unit", "measured")


def sample_array(images, dtype):
    """[0, 1] floats as stored for FID: float16 (unrounded to within 2.4e-4) or rounded to uint8."""
    return data.to_uint8(images) if dtype == "uint8" else np.clip(images, 0, 1).astype(np.float16)


def renormalize(z, target=1.0, mode="global"):
    """Rescale z so its per-dimension std matches `target` (scalar or per-dimension).

    global: one scalar, mean(std_j(z)) -> mean(target); per_dim: z_j -> z_j * target_j / std_j(z).
    Returns (rescaled z, the applied scale).
    """
    z = np.asarray(z, np.float64)
    std = z.std(axis=0)
    target = np.broadcast_to(np.asarray(target, np.float64), std.shape)
    if mode == "global":
        scale = np.mean(target) / max(np.mean(std), 1e-12)
    elif mode == "per_dim":
        scale = target / np.maximum(std, 1e-12)
    else:
        raise common.VaevarError(f"unknown --renorm-mode {mode!r}: use global or per_dim")
    return (z * scale).astype(np.float32), scale


def latent_target(mu, sigma, kind, mode="global", measured_std=None):
    """The std the renormalized latents should have: a scalar (global) or one per dimension.

    authors: their adjust, sqrt(mean_j(Var(mu_j) + mean(sigma_j))) (sigma, not sigma^2);
    variance_law: sqrt(mean_j(Var(mu_j) + mean(sigma_j^2))), the std of z ~ N(mu, sigma);
    unit: 1; measured: the std of sampled training latents (stage2/latent_stats.json).
    per_dim: the same quantities without the mean over j.
    """
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if kind == "authors":
        variance = np.var(mu, 0) + np.mean(sigma, 0)
    elif kind == "variance_law":
        variance = np.var(mu, 0) + np.mean(sigma ** 2, 0)
    elif kind == "unit":
        variance = np.ones(mu.shape[1])
    elif kind == "measured":
        if measured_std is None:
            raise common.VaevarError("--renorm-target measured needs stage2/latent_stats.json: "
                                     "run train_second_stage.py")
        measured_std = np.asarray(measured_std, np.float64)
        return measured_std if mode == "per_dim" else float(np.mean(measured_std))
    else:
        raise common.VaevarError(f"unknown --renorm-target {kind!r}: use {', '.join(RENORM_TARGETS)}")
    return np.sqrt(variance) if mode == "per_dim" else float(np.sqrt(np.mean(variance)))


def renormalize_pixels(reconstructions, originals):
    """The authors' REC renormalization: x' = clip((x - m) * s + m, 0, 1), m the per-pixel mean of the
    reconstructions, s = mean per-pixel std of the originals / that of the reconstructions.
    Both in [0, 1] floats; returns (x', s)."""
    x = np.asarray(reconstructions, np.float64)
    reference = np.asarray(originals, np.float64)
    mean = x.mean(axis=0)
    scale = reference.std(axis=0).mean() / max(x.std(axis=0).mean(), 1e-12)
    return np.clip((x - mean) * scale + mean, 0.0, 1.0).astype(np.float32), float(scale)


def second_stage_variance_ratio(second, mu, seed=0):
    """(mean_j Var(mu_j) - mean_j Var(z_hat_j)) / mean((mu - z_hat)^2): how much variance the second
    stage's reconstruction z_hat of mu loses, relative to its error (their test for renormalizing GEN-2).
    z_hat decodes a sampled second-stage code, as their reconstruct does."""
    from training import decode

    mu2, log_sigma2 = second.encoder.predict(np.asarray(mu, np.float32), batch_size=500, verbose=0)
    noise = np.random.default_rng(seed).standard_normal(mu2.shape).astype(np.float32)
    z_hat = decode(second, mu2 + np.exp(log_sigma2) * noise).astype(np.float64)
    mu = np.asarray(mu, np.float64)
    mse = float(np.mean((mu - z_hat) ** 2))
    return float((np.mean(np.var(mu, 0)) - np.mean(np.var(z_hat, 0))) / max(mse, 1e-12))


def image_grid(images, rows, cols, pad=2):
    """Tile uint8 NHWC images into one uint8 image, upscaled x2 below 64 px."""
    images = np.asarray(images)[:rows * cols]
    n, h, w, c = images.shape
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = image
    if h < 64:
        grid = grid.repeat(2, axis=0).repeat(2, axis=1)
    return grid


def save_png(path, grid):
    from PIL import Image

    with common.atomic_path(path) as tmp:
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(tmp, format="PNG")


def side_by_side(left, right, rows, cols):
    """Two grids with a gap: left without, right with renormalization."""
    a, b = image_grid(left, rows, cols), image_grid(right, rows, cols)
    gap = np.full((a.shape[0], 16, a.shape[2]), 255, np.uint8)
    return np.concatenate([a, gap, b], axis=1)


def interleave(originals, reconstructions, rows, cols):
    """REC grid: originals and reconstructions in alternating columns."""
    pairs = rows * cols // 2
    out = np.empty((2 * pairs,) + originals.shape[1:], np.uint8)
    out[0::2], out[1::2] = originals[:pairs], reconstructions[:pairs]
    return out


def main(argv=None):
    args = common.parse_constants(globals(), __doc__, argv)
    data.check_name(args.dataset)
    if args.quick and args.num_samples == NUM_SAMPLES:
        args.num_samples = 1000
    common.require_positive(args, "num_samples", "grid", "batch_size", "renorm_threshold",
                            allow_zero=("renorm_threshold",))
    for flag, value, choices in (("rec-code", args.rec_code, ("sampled", "mean")),
                                 ("rec-renorm", args.rec_renorm, ("pixel", "latent")),
                                 ("renorm-target", args.renorm_target, RENORM_TARGETS),
                                 ("renorm-mode", args.renorm_mode, ("global", "per_dim")),
                                 ("sample-dtype", args.sample_dtype, ("float16", "uint8"))):
        if value not in choices:
            raise common.VaevarError(f"unknown --{flag} {value!r}: use {' or '.join(choices)}")
    if args.run_dir is None:
        args.run_dir = os.path.join("runs", args.dataset)
    common.set_seed(args.seed)
    import train_second_stage
    from training import decode, encode

    first = common.load_model(
        os.path.join(args.run_dir, common.STAGE1_DIR, common.STAGE1_MODEL),
        "first-stage model", f"run train_first_stage.py --dataset {args.dataset} --run-dir {args.run_dir} first")
    train_second_stage.check_dataset(args.run_dir, args.dataset)
    stage2_dir = os.path.join(args.run_dir, common.STAGE2_DIR)
    second_path = os.path.join(stage2_dir, common.STAGE2_MODEL)
    second = None
    if os.path.exists(second_path):
        common.check_second_stage_matches(stage2_dir, common.weights_digest(first))
        second = common.load_model(second_path, "second-stage model")
    latent_dim = first.latent_dim
    rng = np.random.default_rng(args.seed)

    originals = data.load_evaluation(args.dataset, args.data_path, args.num_samples)
    train_second_stage.check_image_shape(first, originals, args.dataset)
    mu, sigma = encode(first, originals, args.batch_size)
    stats_path = os.path.join(stage2_dir, common.STATS_FILE)
    measured = common.load_json(stats_path)["z_std"] if os.path.exists(stats_path) else None
    target = latent_target(mu, sigma, args.renorm_target, args.renorm_mode, measured)
    rec_noise = rng.standard_normal(mu.shape).astype(np.float32)
    latents = {"rec": mu + sigma * rec_noise if args.rec_code == "sampled" else mu,
               "gen1": rng.standard_normal((args.num_samples, latent_dim)).astype(np.float32)}
    u = rng.standard_normal((args.num_samples, latent_dim)).astype(np.float32)
    gen2_ratio = None
    if second is not None:
        latents["gen2"] = decode(second, u, args.batch_size)
        gen2_ratio = second_stage_variance_ratio(second, mu, args.seed)
    else:
        print(f"GEN-2 skipped: no second-stage model at {second_path} (run train_second_stage.py)")

    out_dir = os.path.join(args.run_dir, common.SAMPLES_DIR)
    cells = args.grid * args.grid
    summary = {"dataset": args.dataset, "num_samples": args.num_samples, "seed": args.seed,
               "rec_code": args.rec_code, "rec_renorm": args.rec_renorm, "renorm_target": args.renorm_target,
               "renorm_mode": args.renorm_mode, "target": np.atleast_1d(target).tolist(), "kinds": {}}
    latent_arrays = {}
    for kind, z in latents.items():
        plain_float = decode(first, z, args.batch_size)
        applied = True
        if kind == "rec" and args.rec_renorm == "pixel":
            z_renorm, scale = z, None
            renormed_float, scale = renormalize_pixels(plain_float, data.to_unit_float(originals))
        else:
            if kind == "gen1" and args.renorm_mode == "global":
                z_renorm, scale = (z * target).astype(np.float32), target  # their GEN-1: N(0, I) * adjust
            else:
                z_renorm, scale = renormalize(z, target, args.renorm_mode)
            if kind == "gen2" and args.renorm_threshold > 0 and gen2_ratio <= args.renorm_threshold:
                z_renorm, scale, applied = z, 1.0, False
            renormed_float = decode(first, z_renorm, args.batch_size)
        plain, renormed = data.to_uint8(plain_float), data.to_uint8(renormed_float)
        # a seeded spread over the set (REC keeps a class-sorted source's order), drawn from the
        # kind's own count: REC has as many as the test split holds, maybe fewer than NUM_SAMPLES
        shown = data.seeded_subset(len(plain), cells, args.seed)
        common.save_npz(os.path.join(out_dir, f"{kind}.npz"), images=sample_array(plain_float, args.sample_dtype))
        common.save_npz(os.path.join(out_dir, f"{kind}_renorm.npz"),
                        images=sample_array(renormed_float, args.sample_dtype))
        if kind == "rec":
            pairs_shown = data.seeded_subset(len(plain), cells // 2, args.seed)  # original, reconstruction
            save_png(os.path.join(out_dir, "rec.png"), image_grid(
                interleave(originals[pairs_shown], plain[pairs_shown], args.grid, args.grid), args.grid, args.grid))
            save_png(os.path.join(out_dir, "rec_renorm.png"), image_grid(
                interleave(originals[pairs_shown], renormed[pairs_shown], args.grid, args.grid), args.grid, args.grid))
        else:
            save_png(os.path.join(out_dir, f"{kind}.png"), image_grid(plain[shown], args.grid, args.grid))
            save_png(os.path.join(out_dir, f"{kind}_renorm.png"), image_grid(renormed[shown], args.grid, args.grid))
        save_png(os.path.join(out_dir, f"{kind}_side_by_side.png"),
                 side_by_side(plain[shown], renormed[shown], args.grid, args.grid))
        latent_arrays[kind], latent_arrays[f"{kind}_renorm"] = z, z_renorm
        summary["kinds"][kind] = {"mean_latent_std": float(np.mean(z.std(0))),
                                  "mean_latent_std_renorm": float(np.mean(z_renorm.std(0))),
                                  "renormalized": applied,
                                  "scale": None if scale is None else np.atleast_1d(scale).tolist()}
        if kind == "gen2":
            summary["kinds"][kind]["variance_loss_ratio"] = gen2_ratio
        note = "" if applied else f" (not applied: variance-loss ratio {gen2_ratio:.3f} <= {args.renorm_threshold})"
        print(f"{kind}: latent mean std {np.mean(z.std(0)):.3f} -> {np.mean(z_renorm.std(0)):.3f}, "
              f"scale {np.mean(scale):.4f}{note}")
    common.save_npz(os.path.join(out_dir, "latents.npz"), **latent_arrays)
    common.save_json(os.path.join(out_dir, "summary.json"), summary)
    print(f"samples written to {out_dir}")


if __name__ == "__main__":
    common.run_main(main)
