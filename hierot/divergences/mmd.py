r"""Maximum Mean Discrepancy, the WAE latent divergence (paper Eq. 7 and the top term of Eq. 10).

The paper takes the divergence :math:`\mathcal{D}_N` at the top of the hierarchy to be the MMD
"as originally proposed by Tolstikhin et al. (2018)": the inverse multiquadratic kernel summed over
the WAE's seven bandwidths, estimated by a U-statistic (Gretton et al., 2012). Those are the
defaults here.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.divergences.helpers import flatten_pair, squared_distances
from hierot.registry import ComponentOptions, divergences

WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Multipliers s of the WAE bandwidths C = 2 d s (Tolstikhin et al., 2018, code release)."""

Bandwidth = Annotated[float, Field(gt=0)]


class MMDOptions(ComponentOptions):
    """Options of ``mmd`` (:class:`MMD`)."""

    kernel: Literal["imq", "rbf"] = Field("imq", description="inverse multiquadratic or RBF")
    scales: Literal["wae"] | Annotated[tuple[Bandwidth, ...], Field(min_length=1)] = Field(
        "wae", description='"wae" (C = 2 d s over seven s) or a list of bandwidths C > 0'
    )
    estimator: Literal["unbiased", "biased"] = Field(
        "unbiased", description="U-statistic (off-diagonal means) or V-statistic"
    )


@divergences.register("mmd", options=MMDOptions)
class MMD:
    r"""Squared MMD with a sum of IMQ or RBF kernels over several bandwidths (the WAE's).

    .. math::

        \mathrm{MMD}^2_k(Q, P) = \mathbb{E}\,k(x, x') + \mathbb{E}\,k(y, y')
            - 2\,\mathbb{E}\,k(x, y),
        \qquad x, x' \sim Q,\; y, y' \sim P,

    with :math:`k = \sum_{C} k_C` over the bandwidths :math:`C` and either kernel

    .. math::

        k_C^{\mathrm{imq}}(x, y) = \frac{C}{C + \|x - y\|^2},
        \qquad
        k_C^{\mathrm{rbf}}(x, y) = \exp\!\left(-\frac{\|x - y\|^2}{C}\right).

    ``scales="wae"`` uses :math:`C = 2 d s` for :math:`s \in \{0.1, 0.2, 0.5, 1, 2, 5, 10\}`,
    :math:`d` the flattened dimension: :math:`2d` is :math:`\mathbb{E}\|y - y'\|^2` under the
    unit Gaussian prior, so these bandwidths assume a prior of unit variance per coordinate.
    Give an explicit list of :math:`C` for another prior scale.

    With samples :math:`x_{1..n}` and :math:`y_{1..m}` the ``unbiased`` estimator (a
    U-statistic, which can be slightly negative) is

    .. math::

        \frac{1}{n(n-1)} \sum_{i \ne j} k(x_i, x_j) + \frac{1}{m(m-1)} \sum_{i \ne j} k(y_i, y_j)
            - \frac{2}{nm} \sum_{i, j} k(x_i, y_j),

    and the ``biased`` one (a V-statistic, never negative) keeps the diagonal terms and divides by
    :math:`n^2` and :math:`m^2`. Cost: one :math:`(n+m)^2` distance matrix and
    :math:`O((n+m)^2 (d + S))` time and :math:`O((n+m)^2)` memory for :math:`S` bandwidths: the
    kernels are summed one bandwidth at a time in place (:class:`KernelSum`, whose backward pass
    recomputes them rather than keeping :math:`2S` matrices; an ``(S, n+m, n+m)`` stack is 2-3x
    slower on CPU).
    """

    def __init__(self, options: MMDOptions):
        self.options = options
        self._unbiased = options.estimator == "unbiased"

    def bandwidths(self, dim: int) -> list[float]:
        """The bandwidths C for flattened dimension ``dim``."""
        if self.options.scales == "wae":
            return [2.0 * dim * s for s in WAE_SCALES]
        return list(self.options.scales)

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        x, y = flatten_pair(samples, prior_samples, min_samples=2 if self._unbiased else 1)
        n = x.shape[0]
        z = torch.cat([x, y])
        dist = squared_distances(z, z)  # once, for all three blocks
        gram = KernelSum.apply(dist, tuple(self.bandwidths(z.shape[1])), self.options.kernel)
        k_xx, k_yy, k_xy = gram[:n, :n], gram[n:, n:], gram[:n, n:]
        within = _mean_within(k_xx, self._unbiased) + _mean_within(k_yy, self._unbiased)
        return within - 2 * k_xy.mean()

    def __repr__(self) -> str:
        o = self.options
        return f"MMD(kernel={o.kernel!r}, scales={o.scales!r}, estimator={o.estimator!r})"


class KernelSum(torch.autograd.Function):
    r"""``sum_C k_C(dist)`` elementwise, for the IMQ or RBF kernel, with a hand-written backward.

    Autograd would keep two ``(n+m)^2`` intermediates per bandwidth for the backward pass and
    allocate a fresh matrix for every operation; this accumulates in place into one buffer and
    saves only ``dist``, recomputing :math:`\sum_C k_C'(d)` in the backward pass
    (:math:`k_C^{\mathrm{imq}}{}' = -C / (C + d)^2`, :math:`k_C^{\mathrm{rbf}}{}' = -k_C / C`).
    """

    @staticmethod
    def forward(ctx, dist: Tensor, bandwidths: tuple[float, ...], kernel: str) -> Tensor:
        ctx.save_for_backward(dist)
        ctx.bandwidths, ctx.kernel = bandwidths, kernel
        return _accumulate(dist, bandwidths, kernel, derivative=False)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        (dist,) = ctx.saved_tensors
        return grad * _accumulate(dist, ctx.bandwidths, ctx.kernel, derivative=True), None, None


def _accumulate(
    dist: Tensor, bandwidths: tuple[float, ...], kernel: str, derivative: bool
) -> Tensor:
    """``sum_C k_C(dist)`` (or its derivative in ``dist``) in two buffers."""
    total = torch.zeros_like(dist)
    term = torch.empty_like(dist)
    for c in bandwidths:
        if kernel == "imq":
            torch.add(dist, c, out=term).reciprocal_()  # 1 / (C + d)
            if derivative:
                term.square_()
            total.add_(term, alpha=-c if derivative else c)
        else:
            torch.mul(dist, -1.0 / c, out=term).exp_()  # exp(-d / C)
            total.add_(term, alpha=-1.0 / c if derivative else 1.0)
    return total


def _mean_within(gram: Tensor, unbiased: bool) -> Tensor:
    """Mean of a square Gram block, over off-diagonal entries when ``unbiased``."""
    if not unbiased:
        return gram.mean()
    n = gram.shape[0]
    return (gram.sum() - gram.diagonal().sum()) / (n * (n - 1))
