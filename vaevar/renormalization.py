"""Renormalization: the rule that rescales REC to the real images' pixel std and GEN-1 and GEN-2 to a latent
target (by default the authors' adjust, which is neither unit variance nor the codes' variance; docs/protocol.md
writes the rule out), its targets and its gate. `renormalize_kind` applies the rule (which kinds, which target,
which gate); the helpers below it compute the pieces. The authors' protocol (asperti/BalancingVAE) by default.
NumPy, plus a model's predict for the gate.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from vaevar.errors import VaevarError

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras

RENORM_TARGETS = ("authors", "variance_law", "unit", "measured")


AUTHORS_BATCH = 100  # their generate() rescales each batch of 100 codes on its own
AUTHORS_GATE = 0.25  # their second stage's variance loss / MSE above which the latent kinds are rescaled


@dataclasses.dataclass(frozen=True)
class RenormalizationSettings:
    """The rule's choices (docs/protocol.md, "The authors' protocol"); the defaults are the authors'."""

    rec_renorm: str = "pixel"  # pixel: their per-pixel rescaling of REC | latent: rescale z like GEN-1
    renorm_mode: str = "global"  # global | per_dim
    renorm_threshold: float = AUTHORS_GATE  # the gate; 0: always
    gen1_renorm: str = "gated"  # gated: GEN-1 only when GEN-2's gate opens | always
    gen2_rescale: str = "batch"  # batch: each batch of AUTHORS_BATCH codes | whole: one scale for the set


def renormalize_kind(
    kind: str,
    z: np.ndarray,
    plain: np.ndarray,
    originals: np.ndarray,
    target: float | np.ndarray,
    settings: RenormalizationSettings,
    decode: Callable[[np.ndarray], np.ndarray],
    gen2_ratio: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float | np.ndarray, bool]:
    """Renormalized images of one kind: (images in [0, 1], z used, scale, applied).

    The rule of docs/protocol.md ("The authors' protocol"), with the variants `settings` chooses:
    gen2_ratio is the gate's ratio (None without a second stage: no gate), plain the decoded codes `z`,
    originals the evaluation images (REC's pixel target), decode(z) -> images.
    """
    if kind == "rec" and settings.rec_renorm == "pixel":
        images, scale = renormalize_pixels(plain, originals)
        return images, z, scale, True
    gate_closed = (
        gen2_ratio is not None and settings.renorm_threshold > 0 and gen2_ratio <= settings.renorm_threshold
    )
    if gate_closed and (kind == "gen2" or (kind == "gen1" and settings.gen1_renorm == "gated")):
        return plain, z, 1.0, False
    if kind == "gen1" and settings.renorm_mode == "global":
        z_renorm, scale = (z * target).astype(np.float32), target
    elif kind == "gen2" and settings.gen2_rescale == "batch":
        z_renorm, scale = renormalize_batches(z, target, settings.renorm_mode)
    else:
        z_renorm, scale = renormalize(z, target, settings.renorm_mode)
    return decode(z_renorm), z_renorm, scale, True


def renormalize_batches(
    z: np.ndarray, target: float | np.ndarray, mode: str = "global", batch: int = AUTHORS_BATCH
) -> tuple[np.ndarray, float | np.ndarray]:
    """renormalize() on each batch of `batch` codes in turn (the last may be shorter): the authors' GEN-2.
    Returns (rescaled z, the mean scale applied)."""
    parts = [renormalize(z[i : i + batch], target, mode) for i in range(0, len(z), batch)]
    return np.concatenate([p[0] for p in parts]), np.mean([p[1] for p in parts], axis=0)


def renormalize(
    z: np.ndarray, target: float | np.ndarray = 1.0, mode: str = "global"
) -> tuple[np.ndarray, float | np.ndarray]:
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
        raise VaevarError(f"unknown --renorm-mode {mode!r}: use global or per_dim")
    return (z * scale).astype(np.float32), scale


def latent_target(
    mu: np.ndarray,
    sigma: np.ndarray,
    kind: str,
    mode: str = "global",
    measured_std: np.ndarray | list[float] | None = None,
) -> float | np.ndarray:
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
        variance = np.var(mu, 0) + np.mean(sigma**2, 0)
    elif kind == "unit":
        variance = np.ones(mu.shape[1])
    elif kind == "measured":
        if measured_std is None:
            raise VaevarError(
                "--renorm-target measured needs stage2/latent_stats.json: run train_second_stage.py"
            )
        measured_std = np.asarray(measured_std, np.float64)
        return measured_std if mode == "per_dim" else float(np.mean(measured_std))
    else:
        raise VaevarError(f"unknown --renorm-target {kind!r}: use {', '.join(RENORM_TARGETS)}")
    return np.sqrt(variance) if mode == "per_dim" else float(np.sqrt(np.mean(variance)))


def renormalize_pixels(reconstructions: np.ndarray, originals: np.ndarray) -> tuple[np.ndarray, float]:
    """The authors' REC renormalization: x' = clip((x - m) * s + m, 0, 1), m the per-pixel mean of the
    reconstructions, s = mean per-pixel std of the originals / that of the reconstructions.
    Both in [0, 1] floats; returns (x', s)."""
    x = np.asarray(reconstructions, np.float64)
    reference = np.asarray(originals, np.float64)
    mean = x.mean(axis=0)
    scale = reference.std(axis=0).mean() / max(x.std(axis=0).mean(), 1e-12)
    return np.clip((x - mean) * scale + mean, 0.0, 1.0).astype(np.float32), float(scale)


def second_stage_variance_ratio(second: keras.Model, mu: np.ndarray, seed: int = 0) -> float:
    """(mean_j Var(mu_j) - mean_j Var(z_hat_j)) / mean((mu - z_hat)^2): how much variance the second
    stage's reconstruction z_hat of mu loses, relative to its error (their test for renormalizing GEN-2).
    z_hat decodes a sampled second-stage code, as their reconstruct does."""
    from vaevar.training import decode

    mu2, log_sigma2 = second.encoder.predict(np.asarray(mu, np.float32), batch_size=500, verbose=0)
    noise = np.random.default_rng(seed).standard_normal(mu2.shape).astype(np.float32)
    z_hat = decode(second, mu2 + np.exp(log_sigma2) * noise).astype(np.float64)
    mu = np.asarray(mu, np.float64)
    mse = float(np.mean((mu - z_hat) ** 2))
    return float((np.mean(np.var(mu, 0)) - np.mean(np.var(z_hat, 0))) / max(mse, 1e-12))
