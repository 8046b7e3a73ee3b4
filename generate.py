"""Generate REC, GEN-1 and GEN-2 samples, each with and without variance
renormalization, as PNG grids and uint8 sample arrays.

    python generate.py --dataset cifar10

REC:   test images -> encoder mean mu -> decoder.
GEN-1: z ~ N(0, I) -> decoder.
GEN-2: u ~ N(0, I) -> second-stage decoder -> z -> decoder.
Renormalized ("_renorm"): the latent batch z is rescaled before decoding so
its mean per-dimension std equals the target (RENORM_TARGET 'unit': 1, the
paper's choice; 'measured': the std of encoded training latents, from
stage2/latent_stats.json). RENORM_MODE 'per_dim' rescales each dimension to
its own target instead of one global scalar.

Outputs in RUN_DIR/samples/: <kind>.npz and <kind>_renorm.npz (key
'images', uint8 NHWC), <kind>.png and <kind>_renorm.png (8x8 grids),
<kind>_side_by_side.png (same seed, left plain, right renormalized: the
paper's Fig. 6), latents.npz (every z batch) and summary.json.
Without a second stage, GEN-2 is skipped with a message.
"""

import os

import numpy as np

import common
import data

DATASET = "cifar10"
DATA_PATH = None
RUN_DIR = None            # default: runs/<dataset>
NUM_SAMPLES = 10000       # per kind; FID uses 10k
RENORM_TARGET = "unit"    # unit | measured
RENORM_MODE = "global"    # global | per_dim
GRID = 8                  # grids are GRID x GRID
BATCH_SIZE = 500
SEED = 0
QUICK = False             # 1000 samples
KINDS = ("rec", "gen1", "gen2")


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


def renorm_target(args, stats_path, latent_dim):
    if args.renorm_target == "unit":
        return np.ones(latent_dim)
    if args.renorm_target == "measured":
        if not os.path.exists(stats_path):
            raise common.VaevarError(f"--renorm-target measured needs {stats_path}: run train_second_stage.py")
        return np.asarray(common.load_json(stats_path)["z_std"])
    raise common.VaevarError(f"unknown --renorm-target {args.renorm_target!r}: use unit or measured")


def main(argv=None):
    args = common.parse_constants(globals(), __doc__, argv)
    data.check_name(args.dataset)
    if args.quick and args.num_samples == NUM_SAMPLES:
        args.num_samples = 1000
    common.require_positive(args, "num_samples", "grid", "batch_size")
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
    target = renorm_target(args, os.path.join(stage2_dir, common.STATS_FILE), latent_dim)
    rng = np.random.default_rng(args.seed)

    test_images = data.load(args.dataset, "test", args.data_path, args.num_samples)
    train_second_stage.check_image_shape(first, test_images, args.dataset)
    latents = {"rec": encode(first, test_images, args.batch_size)[0],
               "gen1": rng.standard_normal((args.num_samples, latent_dim)).astype(np.float32)}
    u = rng.standard_normal((args.num_samples, latent_dim)).astype(np.float32)
    if second is not None:
        latents["gen2"] = decode(second, u, args.batch_size)
    else:
        print(f"GEN-2 skipped: no second-stage model at {second_path} (run train_second_stage.py)")

    out_dir = os.path.join(args.run_dir, common.SAMPLES_DIR)
    cells = args.grid * args.grid
    summary = {"dataset": args.dataset, "num_samples": args.num_samples, "seed": args.seed,
               "renorm_target": args.renorm_target, "renorm_mode": args.renorm_mode, "kinds": {}}
    latent_arrays = {}
    for kind, z in latents.items():
        z_renorm, scale = renormalize(z, target, args.renorm_mode)
        plain = data.to_uint8(decode(first, z, args.batch_size))
        renormed = data.to_uint8(decode(first, z_renorm, args.batch_size))
        common.save_npz(os.path.join(out_dir, f"{kind}.npz"), images=plain)
        common.save_npz(os.path.join(out_dir, f"{kind}_renorm.npz"), images=renormed)
        if kind == "rec":
            save_png(os.path.join(out_dir, "rec.png"),
                     image_grid(interleave(test_images, plain, args.grid, args.grid), args.grid, args.grid))
            save_png(os.path.join(out_dir, "rec_renorm.png"),
                     image_grid(interleave(test_images, renormed, args.grid, args.grid), args.grid, args.grid))
        else:
            save_png(os.path.join(out_dir, f"{kind}.png"), image_grid(plain[:cells], args.grid, args.grid))
            save_png(os.path.join(out_dir, f"{kind}_renorm.png"), image_grid(renormed[:cells], args.grid, args.grid))
        save_png(os.path.join(out_dir, f"{kind}_side_by_side.png"),
                 side_by_side(plain[:cells], renormed[:cells], args.grid, args.grid))
        latent_arrays[kind], latent_arrays[f"{kind}_renorm"] = z, z_renorm
        summary["kinds"][kind] = {"mean_latent_std": float(np.mean(z.std(0))),
                                  "mean_latent_std_renorm": float(np.mean(z_renorm.std(0))),
                                  "scale": np.atleast_1d(scale).tolist()}
        print(f"{kind}: latent mean std {np.mean(z.std(0)):.3f} -> {np.mean(z_renorm.std(0)):.3f}")
    common.save_npz(os.path.join(out_dir, "latents.npz"), **latent_arrays)
    common.save_json(os.path.join(out_dir, "summary.json"), summary)
    print(f"samples written to {out_dir}")


if __name__ == "__main__":
    common.run_main(main)
