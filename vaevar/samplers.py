"""Ex-post samplers (generate.py --samplers): codes for the first stage's decoder from a density fitted to
the encoded training codes, as Ghosh et al.'s RAE samples a latent space "ex post", and gen2_perdim, which
rescales the second stage's codes dimension by dimension. NumPy and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vaevar import layout
from vaevar.errors import VaevarError
from vaevar.renormalization import renormalize

if TYPE_CHECKING:
    from sklearn.mixture import GaussianMixture

EXTRA_SAMPLERS = layout.EXTRA_SAMPLERS
GMM_COMPONENTS = 10


def fit_gaussian(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N(m, C): the mean and full covariance of the codes; needs more codes than dimensions."""
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2 or len(codes) <= codes.shape[1]:
        raise VaevarError(
            f"a full-covariance Gaussian of {codes.shape[-1]}-dim codes needs more than "
            f"{codes.shape[-1]} codes, got {len(codes)}: encode more training images"
        )
    return codes.mean(axis=0), np.cov(codes, rowvar=False)


def sample_gaussian(mean: np.ndarray, covariance: np.ndarray, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(mean, covariance, count).astype(np.float32)


def fit_mixture(codes: np.ndarray, components: int = GMM_COMPONENTS, seed: int = 0) -> GaussianMixture:
    """A full-covariance Gaussian mixture (scikit-learn, seeded); needs components * (dims + 1) codes."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(codes, np.float64)
    needed = components * (codes.shape[1] + 1)
    if codes.ndim != 2 or len(codes) < needed:
        raise VaevarError(
            f"a {components}-component full-covariance mixture of {codes.shape[-1]}-dim codes needs "
            f"at least {needed} codes, got {len(codes)}: encode more training images"
        )
    return GaussianMixture(components, covariance_type="full", random_state=seed).fit(codes)


def sample_mixture(mixture: GaussianMixture, count: int, seed: int) -> np.ndarray:
    """`count` codes from the fitted mixture, in a seeded random order (sklearn returns them by component)."""
    mixture.random_state = seed
    codes, _ = mixture.sample(count)
    return codes[np.random.default_rng(seed).permutation(count)].astype(np.float32)


def sampler_codes(
    name: str,
    count: int,
    seed: int,
    train_mu: np.ndarray | None = None,
    train_z_std: np.ndarray | list[float] | None = None,
    second_stage_codes: np.ndarray | None = None,
) -> np.ndarray:
    """The codes sampler `name` gives the first stage's decoder.

    gauss: N(m, C) of the encoded training codes mu; gmm10: a 10-component
    mixture fitted to them; gen2_perdim: the second stage's codes with each
    dimension rescaled to the std of the encoded codes z = mu + sigma * eps.
    """
    if name == "gauss":
        return sample_gaussian(*fit_gaussian(train_mu), count, seed)
    if name == "gmm10":
        return sample_mixture(fit_mixture(train_mu, GMM_COMPONENTS, seed), count, seed)
    if name == "gen2_perdim":
        if second_stage_codes is None:
            raise VaevarError("the gen2_perdim sampler needs a second stage: run train_second_stage.py")
        return renormalize(second_stage_codes, np.asarray(train_z_std, np.float64), "per_dim")[0]
    raise VaevarError(f"unknown sampler {name!r}: use {', '.join(EXTRA_SAMPLERS)}")
