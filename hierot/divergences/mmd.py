r"""Maximum Mean Discrepancy, the WAE latent divergence (paper Eq. 7 and the top term of Eq. 10).

The paper takes the divergence :math:`\mathcal{D}_N` at the top of the hierarchy to be the MMD
"as originally proposed by Tolstikhin et al. (2018)": the inverse multiquadratic kernel summed over
the WAE's seven bandwidths, estimated by a U-statistic (Gretton et al., 2012). Those are the
defaults here.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.divergences.helpers import flatten_pair, squared_distances
from hierot.divergences.tiled import DEFAULT_TILE, oom_guard, pair_sum
from hierot.registry import ComponentOptions, divergences

TENSORIZED_LIMIT = 2**32
"""Most entries of the tensorized (n+m)^2 matrix (16 GiB in float32): larger is refused."""

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
    backend: Literal["auto", "tensorized", "online"] = Field(
        "auto", description="tensorized: one (n+m)^2 matrix; online: tiles, linear memory; "
        "auto: tensorized when n + m <= tile_size, else online"
    )
    tile_size: int = Field(
        DEFAULT_TILE, ge=16, le=2**15, description="online: rows and columns of one tile"
    )
    prior_pairs: int | None = Field(
        None, ge=1, description="pairs of prior samples in the prior-prior term: null for all "
        "m(m-1)/2, else about this many (an incomplete U-statistic, linear in m)"
    )

    def size_error(self, n: int, m: int, dim: int) -> str | None:
        """Why ``n`` encoded against ``m`` prior samples cannot work (None: they can)."""
        if self.resolved_backend(n, m) == "tensorized" and (n + m) ** 2 > TENSORIZED_LIMIT:
            gib = (n + m) ** 2 * 4 / 2**30
            return (
                f"backend: tensorized holds an (n+m)^2 = {n + m}^2 matrix ({gib:.0f} GiB in "
                "float32, several copies); use backend: online (or auto)"
            )
        return None

    def prior_shifts(self, m: int) -> int | None:
        """Cyclic shifts of the incomplete prior-prior sum for ``m`` prior samples (None: all
        pairs, because ``prior_pairs`` is unset or asks for as many as there are)."""
        if self.prior_pairs is None:
            return None
        shifts = math.ceil(self.prior_pairs / m)
        return shifts if shifts < (m - 1) / 2 else None

    def resolved_backend(self, n: int, m: int) -> str:
        """The backend that runs for ``n`` against ``m`` samples (``auto`` resolved)."""
        if self.backend != "auto":
            return self.backend
        return "tensorized" if n + m <= self.tile_size else "online"


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
    :math:`n^2` and :math:`m^2`.

    ``prior_pairs`` bounds the cost of the prior-prior term, which is quadratic in the number of
    prior draws :math:`m` (``train.prior_samples``) and carries no gradient in training (the
    draws do not depend on the parameters): with :math:`r = \lceil \text{prior\_pairs} / m
    \rceil` it averages :math:`k(y_i, y_{i+s \bmod m})` over :math:`s = 1..r` and all :math:`i`,
    :math:`rm` distinct pairs of independent draws, an *incomplete U-statistic* (Blom, 1976;
    Lee, 1990) with the same expectation and :math:`O(r m d)` cost. The estimator
    stays unbiased and the gradients in :math:`x` are untouched; only the noise of the reported
    value grows. When :math:`r \ge (m - 1)/2` every pair is used (the complete statistic).

    ``backend="online"`` computes the three sums tile by tile
    (:func:`~hierot.divergences.tiled.pair_sum`): :math:`O((n+m) d)` memory, the same time, the
    same value and gradient. ``"auto"`` (default) is ``tensorized`` when :math:`n + m` is at
    most ``tile_size``, else ``online``. ``tensorized`` cost: one :math:`(n+m)^2` distance
    matrix and :math:`O((n+m)^2 (d + S))` time and :math:`O((n+m)^2)` memory for :math:`S`
    bandwidths: the kernels are summed one bandwidth at a time in place (:class:`KernelSum`,
    whose backward pass recomputes them rather than keeping :math:`2S` matrices; an
    ``(S, n+m, n+m)`` stack is 2-3x slower on CPU).
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
        n, m = len(x), len(y)
        backend = self.options.resolved_backend(n, m)
        advice = "use backend: online" if backend == "tensorized" else "use a smaller tile_size"
        shifts = self.options.prior_shifts(m)
        with oom_guard("mmd", n, m, backend, advice):
            if backend == "online":
                return self._online(x, y, shifts)
            return self._tensorized(x, y, shifts)

    def _phi(self, dim: int):
        """``phi(d2, derivative)`` of the summed kernel, for :func:`~.tiled.pair_sum`."""
        bandwidths, kernel = tuple(self.bandwidths(dim)), self.options.kernel

        def phi(d2: Tensor, derivative: bool) -> Tensor:
            return _accumulate(d2, bandwidths, kernel, derivative)

        return phi

    def _prior_mean(self, y: Tensor, shifts: int) -> Tensor:
        """Incomplete U-statistic of the prior-prior term: pairs (i, i+s mod m), s = 1..shifts.

        For the ``biased`` estimator the diagonal's share :math:`k(0)/m` is added exactly.
        """
        m, phi = len(y), self._phi(y.shape[1])
        with torch.set_grad_enabled(torch.is_grad_enabled() and y.requires_grad):
            total = sum(phi((y - y.roll(-s, 0)).square().sum(1), False).sum()
                        for s in range(1, shifts + 1))
            mean_pairs = total / (shifts * m)
            if self._unbiased:
                return mean_pairs
            k0 = phi(y.new_zeros(1), False)[0]
            return (1 - 1 / m) * mean_pairs + k0 / m

    def _online(self, x: Tensor, y: Tensor, shifts: int | None) -> Tensor:
        """The same estimator from three tiled sums (:func:`~hierot.divergences.tiled.pair_sum`);
        with ``shifts``, the prior-prior one is :meth:`_prior_mean` instead.

        The within-sample sums visit each pair of tiles once; the prior-prior sum builds no graph
        when the prior samples need no gradient (they do not depend on the parameters).
        """
        phi = self._phi(x.shape[1])
        n, m, tile, off = len(x), len(y), self.options.tile_size, self._unbiased
        s_xx = pair_sum(x, None, phi, tile_size=tile, exclude_diagonal=off)
        if shifts is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and y.requires_grad):
                s_yy = pair_sum(y, None, phi, tile_size=tile, exclude_diagonal=off)
            within_y = s_yy / (m * (m - 1) if off else m * m)
        else:
            within_y = self._prior_mean(y, shifts)
        s_xy = pair_sum(x, y, phi, tile_size=tile)
        return s_xx / (n * (n - 1) if off else n * n) + within_y - 2 * s_xy / (n * m)

    def _tensorized(self, x: Tensor, y: Tensor, shifts: int | None) -> Tensor:
        """One matrix of kernel values: :math:`(n+m)^2` for all three blocks, or, with
        ``shifts`` (the prior-prior block by :meth:`_prior_mean`), the :math:`n \\times (n+m)`
        rows of the x-x and x-y blocks."""
        n = x.shape[0]
        z = torch.cat([x, y])
        rows = z if shifts is None else x
        dist = squared_distances(rows, z)  # once, for every block it holds
        gram = KernelSum.apply(dist, tuple(self.bandwidths(z.shape[1])), self.options.kernel)
        k_xx, k_xy = gram[:n, :n], gram[:n, n:]
        within_y = (_mean_within(gram[n:, n:], self._unbiased) if shifts is None
                    else self._prior_mean(y, shifts))
        within = _mean_within(k_xx, self._unbiased) + within_y
        return within - 2 * k_xy.mean()

    def __repr__(self) -> str:
        o = self.options
        return (
            f"MMD(kernel={o.kernel!r}, scales={o.scales!r}, estimator={o.estimator!r}, "
            f"backend={o.backend!r}, tile_size={o.tile_size}, prior_pairs={o.prior_pairs})"
        )


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


__all__ = ["MMD", "WAE_SCALES", "KernelSum", "MMDOptions"]
