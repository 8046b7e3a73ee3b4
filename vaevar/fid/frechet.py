"""The Frechet distance and KID between feature sets (NumPy / SciPy, float64)."""

import hashlib
import warnings

import numpy as np
from scipy import linalg

from vaevar.errors import VaevarError

MIN_FULL_RANK = 2048  # fewer samples than features: a singular covariance


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: str = "sqrtm",
    features1: np.ndarray | None = None,
    features2: np.ndarray | None = None,
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64.

    sqrtm: TTUR's computation (scipy.linalg.sqrtm; eps offset when the product
    is singular; imaginary parts dropped unless large). eig: the trace of the
    square root from the eigenvalues of S1^(1/2) S2 S1^(1/2), which is
    symmetric positive semi-definite, so no complex arithmetic is needed.
    features1, features2: the rows S1, S2 are the covariances of, where known;
    eig with fewer rows than features works in their space (trace_sqrt_product).
    """
    mu1, mu2 = np.atleast_1d(np.float64(mu1)), np.atleast_1d(np.float64(mu2))
    sigma1, sigma2 = np.atleast_2d(np.float64(sigma1)), np.atleast_2d(np.float64(sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise VaevarError(
            f"feature sizes differ ({mu1.shape} vs {mu2.shape}): compare features of the same network"
        )
    diff = mu1 - mu2
    if method == "eig":
        tr_covmean = trace_sqrt_product(sigma1, sigma2, features1, features2)
    elif method == "sqrtm":
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            warnings.warn(f"FID: singular product; adding {eps} to the covariance diagonals")
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise VaevarError(
                    f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g} in the "
                    f"matrix square root; use more samples"
                )
            covmean = covmean.real
        tr_covmean = np.trace(covmean)
    else:
        check_method(method)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def check_method(method: str) -> None:
    """A one-line error for an unknown method; compute_fid.py calls it before minutes of feature passes."""
    if method not in ("sqrtm", "eig"):
        raise VaevarError(f"unknown --frechet-method {method!r}: use sqrtm or eig")


def trace_sqrt_product(
    sigma1: np.ndarray,
    sigma2: np.ndarray,
    features1: np.ndarray | None = None,
    features2: np.ndarray | None = None,
) -> float:
    """Tr((S1 S2)^(1/2)) for PSD S1, S2: the sum of the square roots of the eigenvalues of S1 S2.

    With S = R^T R from a side's n <= d rows (low_rank_factor), the nonzero eigenvalues of S1 S2 are those of
    a small matrix, so a sweep point of 1,000 images costs no 2,048 x 2,048 eigenproblem: with both sides' rows
    the sum is the nuclear norm of R1 R2^T (singular values: no square root of a rounding-level eigenvalue);
    with one side's, the eigenvalues of R S R^T. Else sum sqrt(eig(S1^(1/2) S2 S1^(1/2))), S1's square root
    computed once per content (the reference's, the same in every call of a run)."""
    rows1, rows2 = low_rank_factor(sigma1, features1), low_rank_factor(sigma2, features2)
    if rows1 is not None and rows2 is not None:
        return float(np.sum(linalg.svdvals(rows1 @ rows2.T)))
    if rows1 is not None or rows2 is not None:
        rows, other = (rows2, sigma1) if rows2 is not None else (rows1, sigma2)
        return _sum_of_root_eigenvalues(rows @ other @ rows.T)
    root1 = square_root(sigma1)
    return _sum_of_root_eigenvalues(root1 @ sigma2 @ root1)


def _sum_of_root_eigenvalues(product: np.ndarray) -> float:
    """sum sqrt(eig) of a product that is symmetric PSD up to rounding (symmetrised; rounding's negatives 0)."""
    return float(np.sum(np.sqrt(np.clip(linalg.eigvalsh((product + product.T) / 2), 0, None))))


def low_rank_factor(sigma: np.ndarray, features: np.ndarray | None) -> np.ndarray | None:
    """R, (n - 1) x d, with R^T R = sigma (np.cov's), from the n <= d rows sigma was computed from: the rows
    in the Helmert basis (orthonormal, orthogonal to the mean), so R has full row rank and no null direction
    of the centring. None without such rows, or when their covariance's trace is not sigma's (the rows of
    another subset): then the full computation."""
    if features is None or len(features) < 2 or len(features) > sigma.shape[0]:
        return None
    features = np.asarray(features, np.float64)
    k = np.arange(1, len(features))[:, None]
    helmert = (np.cumsum(features, axis=0)[:-1] - k * features[1:]) / np.sqrt(k * (k + 1))
    rows = helmert / np.sqrt(len(features) - 1)
    if not np.isclose(np.sum(rows * rows), np.trace(sigma), rtol=1e-9, atol=0):
        return None
    return rows


_ROOTS = {}  # SHA-256 of a covariance -> its square root: a run's references (test, training; both n)


def square_root(sigma: np.ndarray) -> np.ndarray:
    """The PSD square root of a covariance, computed once per content."""
    sigma = np.ascontiguousarray(sigma, np.float64)
    key = hashlib.sha256(sigma.tobytes()).hexdigest()
    if key not in _ROOTS:
        if len(_ROOTS) >= 4:
            _ROOTS.pop(next(iter(_ROOTS)))
        values, vectors = linalg.eigh(sigma)
        _ROOTS[key] = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    return _ROOTS[key]


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise VaevarError(f"FID needs at least 2 samples, got {len(features)}: generate more samples")
    if len(features) < MIN_FULL_RANK:
        warnings.warn(
            f"FID with {len(features)} < {MIN_FULL_RANK} samples: the covariance is singular and "
            f"the score biased; use 10,000 for comparable numbers"
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


def scored_subset(total: int, n: int, seed: int = 0) -> np.ndarray:
    """Indices of the n of `total` features the authors' whole batches score: the ones dropped are a seeded
    random few, never the tail of a class-sorted set."""
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def scored_and_whole_statistics(
    features: np.ndarray, n: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(mu, sigma) of the n scored features (the authors' whole batches, scored_subset) and of all of them."""
    scored = statistics(features[scored_subset(len(features), n)])
    return scored, scored if n == len(features) else statistics(features)


KID_SUBSETS, KID_SUBSET = 100, 1000  # Binkowski et al.'s and clean-fid's: 100 subsets of min(1000, n)


def kid_std_subset(count1: int, count2: int, subset_size: int = KID_SUBSET) -> int:
    """Features a side in each subset KID's std is taken over: subset_size; with at most that many on a side,
    where every subset would hold that whole side and the std would say nothing, half the smaller side (at
    least 2). The SD of a random half's mean is the SD of the whole set's (sigma / sqrt(n/2) times the
    finite-population factor sqrt(1/2)), so to first order this std is the whole-set KID's noise (more when
    both sets come from one distribution: docs/fid.md)."""
    smaller = min(count1, count2)
    return subset_size if smaller > subset_size else max(2, smaller // 2)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of two sets of m features each, kernel (x.y / d + 1)^3, i = j terms left out."""
    m, dims = len(x), x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / dims + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): the unbiased estimate of MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3,
    on `subsets` seeded random subsets of min(subset_size, n) features a side; (mean, std over subsets).
    With at most subset_size on a side those subsets hold all of it, so the std is taken over `subsets`
    other seeded subsets of kid_std_subset (half the smaller side); the mean is unchanged.
    The diagonal terms are left out of the within-side sums, so its expectation is the population MMD^2
    at any n (FID's is not: its bias grows as n shrinks)."""
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if f1.shape[1] != f2.shape[1]:
        raise VaevarError("KID: feature sizes differ; compare features of the same network")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise VaevarError("KID needs at least 2 samples per side")

    def over_subsets(size: int, rng: np.random.Generator) -> list[float]:
        return [
            _mmd2_unbiased(
                f1[rng.choice(len(f1), size, replace=False)], f2[rng.choice(len(f2), size, replace=False)]
            )
            for _ in range(subsets)
        ]

    values = over_subsets(m, np.random.default_rng(seed))
    spread_size = kid_std_subset(len(f1), len(f2), subset_size)
    spread = values if spread_size == m else over_subsets(spread_size, np.random.default_rng([seed, 1]))
    return float(np.mean(values)), float(np.std(spread))
