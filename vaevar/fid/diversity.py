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


def diversity(
    real: np.ndarray,
    generated: np.ndarray,
    real_radii: dict[int, np.ndarray] | None = None,
    block: int = BLOCK,
) -> dict[str, float]:
    """precision, recall (k = 3), density and coverage (k = 5) of `generated` against `real` features.
    real_radii: knn_radii(real, (3, 5)), given when the reference's are cached. One pass over the generated
    set's own distances (its radii), one over generated-to-real distances (everything else)."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    pr, dc = PRECISION_RECALL_K, DENSITY_COVERAGE_K
    real_radii = real_radii or knn_radii(real, (pr, dc), block)
    generated_radii = knn_radii(generated, (pr,), block)[pr]
    in_real = np.empty(len(generated), bool)  # inside some real ball (k = 3): precision
    density_count = 0  # generated points inside real balls (k = 5), counted per ball: density
    recalled = np.zeros(len(real), bool)  # inside some generated ball (k = 3): recall
    covered = np.zeros(len(real), bool)  # a real ball (k = 5) holding a generated point: coverage
    for start in range(0, len(generated), block):
        d = squared_distances(generated[start : start + block], real)  # (generated block, real)
        in_real[start : start + block] = np.any(d <= real_radii[pr][None, :], axis=1)
        inside_dc = d <= real_radii[dc][None, :]
        density_count += int(np.sum(inside_dc))
        covered |= np.any(inside_dc, axis=0)
        recalled |= np.any(d <= generated_radii[start : start + block, None], axis=0)
    return {
        "precision": float(np.mean(in_real)),
        "recall": float(np.mean(recalled)),
        "density": float(density_count / (dc * len(generated))),
        "coverage": float(np.mean(covered)),
    }
