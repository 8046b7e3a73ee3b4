"""The variance-loss analysis of the paper, on one or several trained runs.

    python variance_analysis.py --run-dirs runs/cifar10,runs/celeba
    python variance_analysis.py --run-dirs runs/cifar10 --stage1-epoch 20   # the first stage kept after epoch 20

Per run (RUN_DIR/variance_analysis/; for kept stages, the folder with their
suffix: variance_analysis_stage1_epoch_<E>/ ...): the per-pixel variance of
test data vs reconstructions vs GEN-1 / GEN-2 (plain and renormalized),
summed over pixels and as a ratio to the data's; the same in latent space;
reconstruction MSE vs variance loss; the PCA identity (Fig. 2: PCA's reconstruction error equals
the variance it loses); the smoothing example (Fig. 3); the variance law
(Eq. 3-4) per latent dimension with the count of inactive variables (the
authors' rule: mean sigma > 0.8); and the reconstructions once more with
each batch's own batch-norm statistics, whose MSE against the moving
statistics' shows whether those lag the weights (short runs), which the
report then says.
Across runs (OUT_DIR): the MSE vs variance-loss scatter of Fig. 4.
Writes PNG figures, variance_loss.json and report.md.

All pixel quantities are in [0, 1] units, per pixel:
  mse           = mean over images and pixels of (x - x_hat)^2
  variance loss = (sum_j Var(x_j) - sum_j Var(x_hat_j)) / D
"""

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

import os

import numpy as np

from vaevar import cli, data, errors, files, layout, training
from vaevar.run import Run
from vaevar.variance_measures import (
    batch_norm_lag_note,
    latent_frechet_distances,
    mean_squared_error,
    pca_identity,
    smoothing_example,
    total_variance,
    variance_law,
    variance_loss,
)

RUN_DIRS = None  # comma-separated run directories (required)
OUT_DIR = None  # where the cross-run scatter goes; default: the first run's variance_analysis/
DATA_PATH = None  # local data file; default the one each run was trained on
JPEG_ROUND_TRIP = True  # CIFAR-10 from a lossless source: JPEG quality 75 and back, as the authors' data
NUM_SAMPLES = 5000  # test images used, a seeded random subset (and the PCA's, capped at PCA_SAMPLES)
PCA_SAMPLES = 2000  # test images for the PCA identity (Fig. 2)
SEED = 0  # the latent draws
STAGE1_EPOCH = 0  # the first stage kept after epoch E (--keep-models-at) and its own second stage; 0: final
STAGE2_EPOCH = 0  # the second stage kept after epoch E (train_second_stage.py --keep-models-at); 0: final
QUICK = False  # 500 images


# -------------------------------------------------------------------- one run


def analyse_run(run_dir, args):
    # the run as generate.py and the API load it: its data path and split are the first stage's
    run = Run.load(
        run_dir,
        stage2_epoch=args.stage2_epoch,
        stage1_epoch=args.stage1_epoch,
        data_path=args.data_path,
        evaluation_count=args.num_samples,
        jpeg_round_trip=args.jpeg_round_trip,
    )
    model, evaluation = run.first, run.evaluation()  # the test images drawn with the FID's seed, encoded
    test, mu, sigma = evaluation["images"], evaluation["mu"], evaluation["sigma"]
    rec = run.decode(mu)
    rng = np.random.default_rng(args.seed)
    z = mu + sigma * rng.standard_normal(mu.shape).astype(np.float32)

    data_var = total_variance(test)
    pixels = {"data": data_var, "reconstruction": total_variance(rec)}
    run_paths = view_paths(run_dir, args)  # generate.py's samples of the same view
    for kind in layout.SAMPLE_SETS:
        path = run_paths.sample(kind)
        if os.path.exists(path):
            with np.load(path) as stored:
                pixels[kind] = total_variance(stored["images"][: args.num_samples])
    latents = {"mu (encoded)": float(np.sum(np.var(mu, 0))), "z ~ N(mu, sigma)": float(np.sum(np.var(z, 0)))}
    latent_path = run_paths.sample_latents
    mismatch = {}
    if os.path.exists(latent_path):
        with np.load(latent_path) as stored:
            for kind in ("gen2", "gen2_renorm"):
                if kind in stored:
                    latents[f"{kind} (stage-2 output)"] = float(np.sum(np.var(stored[kind], 0)))
            # each latent sampler's codes against the encoded test codes (z, and mu): the decoder's mismatch
            samplers = {k: stored[k] for k in stored.keys() if not k.startswith("rec")}
            mismatch = {
                "against z": latent_frechet_distances(z, samplers),
                "against mu": latent_frechet_distances(mu, samplers),
            }
    law = variance_law(mu, sigma)
    pixel_count = int(np.prod(test.shape[1:]))
    pca = pca_identity(test[: args.pca_samples], pca_components(pixel_count))
    # Last: training-mode calls update this loaded copy's moving statistics (it is not saved).
    rec_batch_statistics = training.decode_posterior_means(model, test, batch_statistics=True)
    rec_mse = mean_squared_error(test, rec)
    batch_norm = {
        "mse_moving_statistics": rec_mse,
        "mse_batch_statistics": mean_squared_error(test, rec_batch_statistics),
        "pixel_variance_ratio_batch_statistics": total_variance(rec_batch_statistics) / data_var,
    }
    batch_norm["note"] = batch_norm_lag_note(
        batch_norm["mse_moving_statistics"], batch_norm["mse_batch_statistics"]
    )
    return {
        "run_dir": run_dir,
        "stage1_epoch": args.stage1_epoch,
        "stage2_epoch": args.stage2_epoch,
        "dataset": run.dataset,
        "architecture": "ResNet VAE",
        "n": int(len(test)),
        "pixels": pixel_count,
        "pixel_variance": pixels,
        "pixel_variance_ratio": {k: v / data_var for k, v in pixels.items()},
        "latent_variance": latents,
        "latent_frechet_distance": mismatch,
        "latent_dim": int(mu.shape[1]),
        "reconstruction_mse": rec_mse,
        "reconstruction_variance_loss": variance_loss(test, rec),
        "batch_norm": batch_norm,
        "variance_law": {k: v for k, v in law.items() if not isinstance(v, np.ndarray)},
        "_law": law,
        "pca": pca,
    }


def pca_components(dims):
    return sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, 400, dims // 2) if 0 < k < dims})


# -------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def plot_run(result, run_paths):
    plt = _pyplot()
    paths = {}
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = list(result["pixel_variance_ratio"])
    ax.bar(names, [result["pixel_variance_ratio"][n] for n in names], color="tab:blue")
    ax.axhline(1.0, color="black", lw=1, ls="--", label="test data")
    ax.set_ylabel("total pixel variance / data's")
    ax.set_title(f"{result['dataset']}: variance of generated vs real images")
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    paths["pixel_variance"] = run_paths.analysis_file("pixel_variance.png")
    _save(fig, paths["pixel_variance"])

    fig, ax = plt.subplots(figsize=(6, 3.8))
    names = list(result["latent_variance"])
    ax.bar(names, [result["latent_variance"][n] for n in names], color="tab:green")
    ax.axhline(result["latent_dim"], color="black", lw=1, ls="--", label=f"N(0, I): {result['latent_dim']}")
    ax.set_ylabel("sum over dimensions of Var")
    ax.set_title("latent space variance")
    ax.tick_params(axis="x", rotation=20)
    ax.legend()
    paths["latent_variance"] = run_paths.analysis_file("latent_variance.png")
    _save(fig, paths["latent_variance"])

    law = result["_law"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    dims = np.arange(result["latent_dim"])
    ax.bar(dims, law["second_moment"], color=np.where(law["inactive"], "tab:red", "tab:blue"))
    ax.axhline(1.0, color="black", lw=1, ls="--", label="expected: 1")
    ax.set_xlabel("latent dimension (red: inactive)")
    ax.set_ylabel("E[mu^2] + E[sigma^2]")
    ax.set_title(
        f"variance law: sum {law['second_moment_sum']:.1f} over {result['latent_dim']} dims, "
        f"{law['inactive_count']} inactive ({law['inactive_rule']})"
    )
    ax.legend()
    paths["variance_law"] = run_paths.analysis_file("variance_law.png")
    _save(fig, paths["variance_law"])

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ks = [r["k"] for r in result["pca"]]
    ax.plot(ks, [r["mse"] for r in result["pca"]], "o-", label="reconstruction MSE")
    ax.plot(ks, [r["variance_loss"] for r in result["pca"]], "x--", label="variance loss")
    ax.set_xscale("log")
    ax.set_xlabel("PCA components k")
    ax.set_ylabel("per pixel")
    ax.set_title(f"PCA on {result['dataset']}: error = variance lost")
    ax.legend()
    paths["pca"] = run_paths.analysis_file("pca_identity.png")
    _save(fig, paths["pca"])
    return paths


def plot_smoothing(example, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(example["t"], example["signal"], color="tab:blue", lw=1, label="signal")
    ax.plot(example["t"], example["smooth"], color="tab:green", lw=2, label="moving average")
    ax.set_xlabel("t")
    ax.set_ylabel("value")
    ax.set_title(f"MSE {example['mse']:.3f}, variance loss {example['variance_loss']:.3f}")
    ax.legend()
    _save(fig, path)


def plot_scatter(results, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for dataset in sorted({r["dataset"] for r in results}):
        chosen = [r for r in results if r["dataset"] == dataset]
        ax.scatter(
            [r["reconstruction_mse"] for r in chosen],
            [r["reconstruction_variance_loss"] for r in chosen],
            label=f"{dataset} ({chosen[0]['architecture']})",
        )
    top = max(max(r["reconstruction_mse"], r["reconstruction_variance_loss"]) for r in results) * 1.1
    ax.plot([0, top], [0, top], color="black", lw=1, ls="--", label="diagonal")
    ax.set_xlim(0, top)
    ax.set_ylim(min(0, min(r["reconstruction_variance_loss"] for r in results)), top)
    ax.set_xlabel("reconstruction MSE (per pixel)")
    ax.set_ylabel("variance loss (per pixel)")
    ax.set_title("MSE vs variance loss (Fig. 4)")
    ax.legend()
    _save(fig, path)


def write_report(result, figures, smoothing, run_paths):
    law = result["variance_law"]
    lines = [
        f"# Variance loss: {result['dataset']} ({result['run_dir']})",
        "",
        f"{result['n']} test images, {result['pixels']} values each; pixel values in [0, 1].",
        "",
        "| images | total pixel variance | ratio to data |",
        "|---|---|---|",
    ]
    for name, value in result["pixel_variance"].items():
        lines.append(f"| {name} | {value:.3f} | {result['pixel_variance_ratio'][name]:.3f} |")
    lines += [
        "",
        f"Reconstruction MSE {result['reconstruction_mse']:.5f} per pixel, variance loss "
        f"{result['reconstruction_variance_loss']:.5f} per pixel (moving batch-norm statistics, the authors' "
        f"inference). With each batch of 100 normalized by its own statistics: MSE "
        f"{result['batch_norm']['mse_batch_statistics']:.5f}, pixel variance "
        f"{result['batch_norm']['pixel_variance_ratio_batch_statistics']:.3f} of the data's.",
        "",
        "| latents | sum of variances |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.2f} |" for k, v in result["latent_variance"].items()]
    mismatch = result["latent_frechet_distance"]
    if mismatch:
        lines += [
            "",
            "Latent mismatch: the Fréchet distance between each sampler's codes and the encoded test codes.",
            "",
            "| sampler | against z = mu + sigma * eps | against mu |",
            "|---|---|---|",
        ]
        lines += [
            f"| {k} | {v:.2f} | {mismatch['against mu'][k]:.2f} |" for k, v in mismatch["against z"].items()
        ]
    lines += [
        "",
        f"Variance law: sum of E[mu^2] + E[sigma^2] = {law['second_moment_sum']:.2f} over "
        f"{law['latent_dim']} dimensions (expected {law['latent_dim']}); max |E[mu]| = "
        f"{law['max_abs_mu_mean']:.3f}, sum of E[mu]^2 = {law['mu_mean_square_sum']:.2f} (0 for centred "
        f"codes); {law['inactive_count']} inactive variables ({law['inactive_rule']}).",
        "",
        f"Smoothing example (Fig. 3): MSE {smoothing['mse']:.3f}, variance loss "
        f"{smoothing['variance_loss']:.3f}.",
        "",
    ]
    if result["batch_norm"]["note"]:
        lines += [f"**Batch-norm lag.** {result['batch_norm']['note']}", ""]
    lines += [f"![{name}]({os.path.basename(p)})" for name, p in figures.items()]
    curves = [
        f"[{name}]({os.path.relpath(stage.curves, run_paths.analysis)})"
        for name, stage in (("stage1", run_paths.stage1), ("stage2", run_paths.stage2))
        if os.path.exists(stage.curves)
    ]
    if curves:
        lines += ["", f"Training curves: {', '.join(curves)}."]
    files.save_text(run_paths.analysis_file("report.md"), "\n".join(lines) + "\n")


def view_paths(run_dir, args):
    """The run's files for the stages analysed: the final ones, or the kept copies --stage1/2-epoch name."""
    return layout.RunPaths(run_dir, args.stage2_epoch, args.stage1_epoch)


def samples_summary_digest(run_paths):
    """SHA-256 of the view's samples summary.json (None without one): which generate.py run was analysed."""
    path = run_paths.samples_summary
    return files.file_digest(path) if os.path.exists(path) else None


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    if not args.run_dirs:
        raise errors.VaevarError("give --run-dirs DIR[,DIR...] (directories written by train_first_stage.py)")
    if args.quick and args.num_samples == NUM_SAMPLES:
        args.num_samples = data.QUICK_SETTINGS["analysis_samples"]
    cli.require_positive(args, "num_samples", "pca_samples")
    backend.set_seed(args.seed)
    print(backend.runtime_line(), flush=True)
    smoothing = smoothing_example(seed=args.seed)
    print(f"smoothing example: MSE {smoothing['mse']:.3f}, variance loss {smoothing['variance_loss']:.3f}")
    results = []
    for run_dir in [d for d in args.run_dirs.split(",") if d]:
        result = analyse_run(run_dir, args)
        run_paths = view_paths(run_dir, args)
        os.makedirs(run_paths.analysis, exist_ok=True)
        figures = plot_run(result, run_paths)
        figures["smoothing"] = run_paths.analysis_file("smoothing.png")
        plot_smoothing(smoothing, figures["smoothing"])
        summary = {k: v for k, v in result.items() if not k.startswith("_")}
        summary["smoothing"] = {"mse": smoothing["mse"], "variance_loss": smoothing["variance_loss"]}
        summary["samples_summary_sha256"] = samples_summary_digest(run_paths)  # the samples analysed
        files.save_json(run_paths.analysis_summary, summary)
        write_report(result, figures, smoothing, run_paths)
        results.append(result)
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in result["pixel_variance_ratio"].items())
        print(
            f"{run_dir}: variance ratio to data: {ratios}; MSE {result['reconstruction_mse']:.5f} vs "
            f"variance loss {result['reconstruction_variance_loss']:.5f}; variance law sum "
            f"{result['variance_law']['second_moment_sum']:.2f}/{result['latent_dim']}, "
            f"{result['variance_law']['inactive_count']} inactive ({result['variance_law']['inactive_rule']})"
        )
        if result["batch_norm"]["note"]:
            print(f"note: {result['batch_norm']['note']}")
    out_dir = args.out_dir or view_paths(results[0]["run_dir"], args).analysis
    plot_scatter(results, os.path.join(out_dir, "mse_vs_variance_loss.png"))
    print(f"figures and report in {', '.join(view_paths(r['run_dir'], args).analysis for r in results)}")


if __name__ == "__main__":
    errors.run_main(main)
