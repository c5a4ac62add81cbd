r"""The Fréchet distance between Gaussian fits of two sets of features.

With :math:`(\mu_a, \Sigma_a)` and :math:`(\mu_b, \Sigma_b)` the mean and covariance of two
feature sets, the Fréchet (2-Wasserstein) distance between the Gaussians they define is

.. math::

    d^2 = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\Sigma_a + \operatorname{tr}\Sigma_b
          - 2 \operatorname{tr}\big(\Sigma_a^{1/2} \Sigma_b \Sigma_a^{1/2}\big)^{1/2}

(Dowson & Landau, 1982), the quantity behind the FID of Heusel et al. (2017). hierot reports it
in the feature space of its own small classifier (:mod:`hierot.evaluation.classifier`), as the
*Fréchet classifier distance* (FCD); it is not an FID and not comparable with published FIDs.

The matrix square root is taken through symmetric eigendecompositions in float64, so the result
is real and, up to round-off, non-negative; it is clamped at 0. The estimate from n samples is
biased upwards, the more so the fewer the samples and the more the features: compare distances
computed with the same number of samples only.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor


def gaussian_fit(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (unbiased) of ``(n, d)`` features, float64."""
    if isinstance(features, Tensor):
        features = features.detach().cpu().double().numpy()
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need (n >= 2, d) features, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """:math:`d^2` from two means and covariances (see the module docstring)."""
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(value, 0.0)


def frechet_distance(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """Squared Fréchet distance between Gaussian fits of ``(n, d)`` and ``(m, d)`` features.

    Parameters
    ----------
    features_a, features_b:
        Two feature sets with the same number of columns, at least two rows each.

    Returns
    -------
    float
        :math:`d^2 \\ge 0`; about 0 for two samples of one distribution (exactly 0 for
        identical sets).
    """
    return frechet_from_stats(*gaussian_fit(features_a), *gaussian_fit(features_b))


__all__ = ["frechet_distance", "frechet_from_stats", "gaussian_fit"]
