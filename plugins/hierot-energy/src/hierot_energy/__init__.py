r"""Energy distance (Székely & Rizzo, 2013) as a hierot latent divergence.

A plug-in: hierot finds :class:`EnergyDistance` through the ``hierot.divergences`` entry point
declared in this package's ``pyproject.toml``; importing this module registers it as ``energy``
with its options (:class:`EnergyOptions`), and hierot records which package supplied it. The
distances come from hierot's public helpers for plug-in authors,
:mod:`hierot.divergences.helpers`. It can stand in for
the MMD at the top of the StackedWAE objective (the paper's :math:`\mathcal{D}_N` in Eq. 10).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.divergences.helpers import distance_power, flatten_pair, squared_distances
from hierot.registry import ComponentOptions, divergences

__all__ = ["EnergyDistance", "EnergyOptions"]
__version__ = "0.1.0"


class EnergyOptions(ComponentOptions):
    """Options of ``energy`` (:class:`EnergyDistance`)."""

    beta: float = Field(1.0, gt=0, lt=2, description="exponent of the distance, in (0, 2)")
    estimator: Literal["unbiased", "biased"] = Field(
        "unbiased", description="U-statistic (off-diagonal means) or V-statistic"
    )


@divergences.register("energy", options=EnergyOptions)
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

    def __init__(self, options: EnergyOptions):
        self.options = options
        self._unbiased = options.estimator == "unbiased"

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        x, y = flatten_pair(samples, prior_samples, min_samples=2 if self._unbiased else 1)
        n = x.shape[0]
        z = torch.cat([x, y])
        # |z_i - z_j|^beta for all pairs; the diagonal is exactly zero (not round-off)
        eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
        dist = distance_power(squared_distances(z, z).masked_fill(eye, 0.0), self.options.beta)
        d_xx, d_yy, d_xy = dist[:n, :n], dist[n:, n:], dist[:n, n:]
        return d_xy.mean() - 0.5 * (self._within(d_xx) + self._within(d_yy))

    def _within(self, block: Tensor) -> Tensor:
        if not self._unbiased:
            return block.mean()
        k = block.shape[0]
        return block.sum() / (k * (k - 1))  # the diagonal is zero

    def __repr__(self) -> str:
        return f"EnergyDistance(beta={self.options.beta}, estimator={self.options.estimator!r})"

