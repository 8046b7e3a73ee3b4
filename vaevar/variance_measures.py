"""The variance-loss measures (NumPy): pixel variance, MSE vs variance loss, the PCA
identity, the smoothing example, the variance law.

All pixel quantities are in [0, 1] units, per pixel:
  mse           = mean over images and pixels of (x - x_hat)^2
  variance loss = (sum_j Var(x_j) - sum_j Var(x_hat_j)) / D
"""

from collections.abc import Iterable, Mapping

import numpy as np

# The authors' rule for an inactive (collapsed) latent variable (asperti/BalancingVAE, computed_gamma.py, 7965c70
# and its later version alike): its mean sigma over the encoded images is above 0.8; no condition on Var(mu).
INACTIVE_SIGMA = 0.8
INACTIVE_RULE = f"mean sigma > {INACTIVE_SIGMA} (the authors' rule)"
BATCH_NORM_LAG = 1.5  # reconstruction MSE, moving / batch statistics, above which the report flags the lag


def flat(images: np.ndarray) -> np.ndarray:
    """Images as rows of float64 pixels (uint8 scaled to [0, 1])."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return images.reshape(len(images), -1).astype(np.float64) / scale


def total_variance(images: np.ndarray) -> float:
    """Sum over pixels of the per-pixel variance across images."""
    return float(np.sum(np.var(flat(images), axis=0)))


def mean_squared_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Per-pixel MSE between images and their reconstructions."""
    return float(np.mean((flat(x) - flat(x_hat)) ** 2))


def variance_loss(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Per-pixel variance lost by x_hat relative to x."""
    dims = flat(x).shape[1]
    return (total_variance(x) - total_variance(x_hat)) / dims


def pca_identity(x: np.ndarray, components: Iterable[int]) -> list[dict[str, int | float]]:
    """For each k: PCA reconstruction's per-pixel MSE and variance loss (equal, Fig. 2)."""
    x = flat(x)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    rows = []
    for k in components:
        basis = vt[:k]
        x_hat = (x - mean) @ basis.T @ basis + mean
        rows.append(
            {"k": int(k), "mse": mean_squared_error(x, x_hat), "variance_loss": variance_loss(x, x_hat)}
        )
    return rows


def smoothing_example(length: int = 400, window: int = 15, seed: int = 0) -> dict[str, np.ndarray | float]:
    """Fig. 3: a noisy 1-D signal, its moving average; MSE vs variance loss."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 8 * np.pi, length)
    signal = 2 * np.sin(t) + np.sin(3.7 * t) + rng.normal(0, 0.8, length)
    padded = np.pad(signal, window // 2, mode="reflect")
    smooth = np.convolve(padded, np.ones(window) / window, mode="valid")
    smooth += signal.mean() - smooth.mean()  # same mean, as in the paper's figure
    return {
        "t": t,
        "signal": signal,
        "smooth": smooth,
        "mse": float(np.mean((signal - smooth) ** 2)),
        "variance_loss": float(np.var(signal) - np.var(smooth)),
    }


def variance_law(mu: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray | int | float | str]:
    """Per latent dimension: E[mu] (~0), E[mu^2] + E[sigma^2] (~1), and the inactive variables by the authors'
    rule (INACTIVE_RULE: mean sigma > 0.8)."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    second = np.mean(mu**2, 0) + np.mean(sigma**2, 0)
    inactive = np.mean(sigma, 0) > INACTIVE_SIGMA
    return {
        "mu_mean": np.mean(mu, 0),
        "second_moment": second,
        "inactive": inactive,
        "second_moment_sum": float(second.sum()),
        "latent_dim": int(mu.shape[1]),
        "inactive_count": int(inactive.sum()),
        "inactive_rule": INACTIVE_RULE,
        "max_abs_mu_mean": float(np.max(np.abs(np.mean(mu, 0)))),
        "mu_mean_square_sum": float(np.sum(np.mean(mu, 0) ** 2)),
    }  # off-centre codes: sum_j E[mu_j]^2


def latent_statistics(mu: np.ndarray, sigma: np.ndarray) -> dict[str, int | float | list[float]]:
    """Per-dimension moments of the encoded training set (the variance law, Eq. 3-4):
    train_second_stage.py's latent_stats.json; z_std is the authors' renormalization target."""
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    mean_sigma_squared = np.mean(sigma**2, 0)
    z_std = np.sqrt(np.var(mu, 0) + mean_sigma_squared)  # std over the data of z ~ N(mu, sigma)
    return {
        "count": int(len(mu)),
        "mu_mean": np.mean(mu, 0).tolist(),
        "mu_std": np.std(mu, 0).tolist(),
        "sigma_mean": np.mean(sigma, 0).tolist(),
        "z_std": z_std.tolist(),
        "second_moment": (np.mean(mu**2, 0) + mean_sigma_squared).tolist(),
        "mean_z_std": float(np.mean(z_std)),
    }


def batch_norm_lag_note(mse_moving: float, mse_batch: float) -> str:
    """A sentence for the report when the moving batch-norm statistics lag the weights (short runs), else ''."""
    ratio = mse_moving / mse_batch
    if ratio <= BATCH_NORM_LAG:
        return ""
    return (
        f"With the moving batch-norm statistics (the authors' inference) the reconstructions' MSE is {ratio:.1f}x "
        f"that with each batch's own statistics: the moving statistics lag the weights, as after a short run, "
        f"so part of what these reconstructions lose or gain in variance is that lag, not the VAE. "
        f"train_first_stage.py --recalibrate-bn 10000 re-estimates them (not the authors' protocol)."
    )


def latent_frechet_distances(reference: np.ndarray, codes: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The Fréchet distance in the latent space between the reference codes (the encoded data) and each
    sampler's codes: the mismatch the paper blames, between what the decoder was trained on and what it is
    fed. Gaussians fitted to both sides, float64, fid/frechet.py's closed form."""
    from vaevar.fid.frechet import frechet_distance, statistics

    fitted = statistics(reference)
    return {name: float(frechet_distance(*fitted, *statistics(values))) for name, values in codes.items()}
