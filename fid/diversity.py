"""Fidelity and diversity apart, on the same pool_3 features as FID.

Improved precision and recall (Kynkäänniemi et al. 2019, k = 3): each set's manifold is the union of balls
around its points, each of radius the distance to its k-th nearest neighbour in the set; precision is the
fraction of generated points inside the real manifold, recall the fraction of real points inside the
generated one. Density and coverage (Naeem et al. 2020, k = 5): density counts, per generated point, the
real balls it falls in (divided by k, so ~1 when the sets match); coverage is the fraction of real balls
holding a generated point. Exact nearest neighbours, in blocks of rows, so 10,000 against 10,000 2048-dim
features needs a few hundred MB, not the full distance matrices. NumPy only.
"""

from __future__ import annotations

import numpy as np

PRECISION_RECALL_K = 3
DENSITY_COVERAGE_K = 5
BLOCK = 1024  # rows of a distance block: 1024 x 10,000 float64 is 82 MB


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i - b_j|^2 for every pair, in float64, never negative."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def knn_radii(points: np.ndarray, ks: tuple[int, ...], block: int = BLOCK) -> dict[int, np.ndarray]:
    """{k: squared distance of each point to its k-th nearest neighbour in the set, itself excluded}."""
    points = np.asarray(points, np.float64)
    if len(points) <= max(ks):
        raise ValueError(
            f"{len(points)} points: the {max(ks)}-th nearest neighbour needs more than {max(ks)}"
        )
    radii = {k: np.empty(len(points)) for k in ks}
    for start in range(0, len(points), block):
        d = squared_distances(points[start : start + block], points)
        # column 0 of the sorted row is the point itself (distance 0)
        nearest = np.partition(d, max(ks), axis=1)[:, : max(ks) + 1]
        nearest.sort(axis=1)
        for k in ks:
            radii[k][start : start + block] = nearest[:, k]
    return radii


def _inside_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, block: int) -> np.ndarray:
    """For each point, how many balls (centres, squared radii) hold it."""
    counts = np.empty(len(points), np.int64)
    for start in range(0, len(points), block):
        d = squared_distances(points[start : start + block], centres)
        counts[start : start + block] = np.sum(d <= radii[None, :], axis=1)
    return counts


def _covered(centres: np.ndarray, radii: np.ndarray, points: np.ndarray, block: int) -> np.ndarray:
    """For each ball (centre, squared radius), whether any point lies in it."""
    covered = np.empty(len(centres), bool)
    for start in range(0, len(centres), block):
        d = squared_distances(centres[start : start + block], points)
        covered[start : start + block] = np.any(d <= radii[start : start + block, None], axis=1)
    return covered


def diversity(
    real: np.ndarray,
    generated: np.ndarray,
    real_radii: dict[int, np.ndarray] | None = None,
    block: int = BLOCK,
) -> dict[str, float]:
    """precision, recall (k = 3), density and coverage (k = 5) of `generated` against `real` features.
    real_radii: knn_radii(real, (3, 5)), given when the reference's are cached."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    ks = (PRECISION_RECALL_K, DENSITY_COVERAGE_K)
    real_radii = real_radii or knn_radii(real, ks, block)
    generated_radii = knn_radii(generated, (PRECISION_RECALL_K,), block)[PRECISION_RECALL_K]
    in_real = _inside_counts(generated, real, real_radii[PRECISION_RECALL_K], block)
    in_real_dc = _inside_counts(generated, real, real_radii[DENSITY_COVERAGE_K], block)
    return {
        "precision": float(np.mean(in_real > 0)),
        "recall": float(np.mean(_inside_counts(real, generated, generated_radii, block) > 0)),
        "density": float(np.sum(in_real_dc) / (DENSITY_COVERAGE_K * len(generated))),
        "coverage": float(np.mean(_covered(real, real_radii[DENSITY_COVERAGE_K], generated, block))),
    }
