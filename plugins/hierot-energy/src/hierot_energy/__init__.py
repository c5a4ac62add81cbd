r"""Energy distance (Székely & Rizzo, 2013) as a hierot latent divergence.

A plug-in: hierot finds :class:`EnergyDistance` through the ``hierot.divergences`` entry point
declared in this package's ``pyproject.toml`` and registers it as ``energy``. It can stand in for
the MMD at the top of the StackedWAE objective (the paper's :math:`\mathcal{D}_N` in Eq. 10).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.errors import HierotError
from hierot.registry import ComponentOptions

__all__ = ["EnergyDistance"]
__version__ = "0.1.0"


class EnergyDistance:
    r"""Energy distance E|x-y|^b - (E|x-x'|^b + E|y-y'|^b) / 2: no bandwidth to tune.

    .. math::

        \mathcal{E}_\beta(Q, P) = \mathbb{E}\,\|x - y\|^\beta
            - \tfrac12 \left( \mathbb{E}\,\|x - x'\|^\beta + \mathbb{E}\,\|y - y'\|^\beta \right),
        \qquad x, x' \sim Q,\; y, y' \sim P.

    For :math:`0 < \beta < 2` it is non-negative and zero iff :math:`Q = P`; it is the squared
    MMD of the kernel :math:`-\tfrac12\|x - y\|^\beta` (up to terms that cancel), so no bandwidth
    needs tuning and it is invariant to rotations and translations. With samples
    :math:`x_{1..n}`, :math:`y_{1..m}` the ``unbiased`` estimator (a U-statistic, possibly
    slightly negative) averages :math:`\|x_i - x_j\|^\beta` over :math:`i \ne j`, dividing by
    :math:`n(n - 1)`; the ``biased`` one (a V-statistic, never negative) divides by :math:`n^2`.
    For 1-D data and :math:`\beta = 1`, ``biased`` equals ``scipy.stats.energy_distance ** 2 / 2``.

    Cost: :math:`O((n + m)^2 d)` time, :math:`O((n + m)^2)` memory.
    """

    class Options(ComponentOptions):
        beta: float = Field(1.0, gt=0, lt=2, description="exponent of the distance, in (0, 2)")
        estimator: Literal["unbiased", "biased"] = Field(
            "unbiased", description="U-statistic (off-diagonal means) or V-statistic"
        )

    def __init__(self, options: Options):
        self.options = options
        self._unbiased = options.estimator == "unbiased"

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        if samples.shape[1:] != prior_samples.shape[1:]:
            raise HierotError(
                f"energy: inputs must share their event shape; got {tuple(samples.shape)} "
                f"and {tuple(prior_samples.shape)}"
            )
        n, m = samples.shape[0], prior_samples.shape[0]
        if self._unbiased and min(n, m) < 2:
            raise HierotError(f"energy: the unbiased estimator needs 2 samples each; got {n}, {m}")
        z = torch.cat([samples.flatten(1), prior_samples.flatten(1)])
        dist = _distance_power(z, self.options.beta)
        d_xx, d_yy, d_xy = dist[:n, :n], dist[n:, n:], dist[:n, n:]
        return d_xy.mean() - 0.5 * (self._within(d_xx) + self._within(d_yy))

    def _within(self, block: Tensor) -> Tensor:
        if not self._unbiased:
            return block.mean()
        k = block.shape[0]
        return block.sum() / (k * (k - 1))  # the diagonal is zero

    def __repr__(self) -> str:
        return f"EnergyDistance(beta={self.options.beta}, estimator={self.options.estimator!r})"


def _distance_power(z: Tensor, beta: float) -> Tensor:
    r""":math:`\|z_i - z_j\|^\beta` for all pairs, with a zero (not NaN) gradient where
    :math:`z_i = z_j` (including the diagonal, which is exactly zero)."""
    sq = (z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * (z @ z.T)
    sq = sq.clamp_min(0.0)
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    tiny = torch.finfo(z.dtype).tiny
    positive = (sq > tiny) & ~eye
    return torch.where(positive, sq.clamp_min(tiny) ** (beta / 2), torch.zeros_like(sq))
