r"""Exact and sliced Wasserstein distances between samples (paper Eq. 8, :math:`W_c`).

StackedWAE (Eq. 10) is derived by taking each divergence to be the Wasserstein distance itself;
at the top of the hierarchy it can also be used directly, solved exactly by a network simplex or
approximated by slicing (Rabin et al., 2011; Kolouri et al., 2019). Both use POT with its PyTorch
backend, so they are differentiable in the samples.
"""

from __future__ import annotations

from typing import Literal

import ot
import torch
from pydantic import Field
from torch import Tensor

from hierot.divergences.helpers import flatten_pair, ground_cost
from hierot.registry import ComponentOptions, divergences

EXACT_LIMIT = 8192
"""Most samples a side for ``wasserstein``: 9-12 s and 3 GiB per call at 8,192 on a CPU."""
SLICED_LIMIT = 2**30
"""Most projected values ``n_projections * (n + m)`` for ``sliced-wasserstein`` (4 GiB float32)."""


class WassersteinOptions(ComponentOptions):
    """Options of ``wasserstein`` (:class:`Wasserstein`)."""

    p: Literal[1, 2] = Field(2, description="cost |x - y|^p: squared Euclidean (2) or not (1)")
    max_iter: int = Field(100_000, gt=0, lt=2**31, description="network simplex iterations at most")

    def size_error(self, n: int, m: int, dim: int) -> str | None:
        """Refuse more than ``EXACT_LIMIT`` samples a side (cubic time, an n x m float64 cost)."""
        if max(n, m) <= EXACT_LIMIT:
            return None
        gib = n * m * 8 / 2**30
        return (
            f"wasserstein (exact OT) is practical up to {EXACT_LIMIT} samples a side: it takes "
            f"about n^3 log n time and an n x m float64 cost matrix ({gib:.1f} GiB here). Use "
            "sinkhorn with backend: online (the debiased entropic OT in linear memory; a small "
            "blur comes close to the exact cost) or sliced-wasserstein"
        )


@divergences.register("wasserstein", options=WassersteinOptions)
class Wasserstein:
    r"""Exact optimal transport cost W_p^p between the two samples (network simplex).

    .. math::

        W_p^p(\hat Q, \hat P) = \min_{\pi \in \Pi(a, b)} \sum_{i, j} \pi_{ij}\,\|x_i - y_j\|^p,
        \qquad a = \tfrac1n \mathbf{1}_n,\; b = \tfrac1m \mathbf{1}_m,

    with the squared Euclidean cost for ``p = 2`` (the paper's :math:`c_n`) and the Euclidean
    one for ``p = 1``. Note the scale: this is :math:`W_2^2`, twice what ``sinkhorn`` tends to.

    Solved by POT's network simplex (``ot.emd2``, on the CPU in float64 whatever the input);
    the gradient with respect to the samples is that of :math:`\sum \pi^\star_{ij} C_{ij}` at the
    optimal plan :math:`\pi^\star`. Cost :math:`O(n^3 \log n)` time and :math:`O(nm)` memory in
    practice: fine for a few thousand samples; more than ``EXACT_LIMIT`` (8,192) a side is
    refused when the spec is validated, pointing to ``sinkhorn`` with ``backend: online``. As
    an estimate of :math:`W_p^p(Q, P)` from samples it is biased upwards, and converges slowly
    (:math:`n^{-1/d}`) in high dimension :math:`d`; it is zero for identical samples.
    """

    def __init__(self, options: WassersteinOptions):
        self.options = options

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        x, y = flatten_pair(samples, prior_samples)
        cost = ground_cost(x, y, self.options.p)
        a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype, device=x.device)
        b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype, device=y.device)
        return ot.emd2(a, b, cost, numItermax=self.options.max_iter)

    def __repr__(self) -> str:
        return f"Wasserstein(p={self.options.p})"


class SlicedWassersteinOptions(ComponentOptions):
    """Options of ``sliced-wasserstein`` (:class:`SlicedWasserstein`)."""

    n_projections: int = Field(50, gt=0, le=2**16, description="number L of random directions")
    p: Literal[1, 2] = Field(2, description="exponent of the 1-D costs |s - t|^p")
    seed: int | None = Field(
        None, ge=0, lt=2**63, description="fixed projections (None: fresh ones)"
    )

    def size_error(self, n: int, m: int, dim: int) -> str | None:
        """Refuse more than ``SLICED_LIMIT`` projected values (sorted, with their gradients)."""
        if self.n_projections * (n + m) <= SLICED_LIMIT:
            return None
        return (
            f"sliced-wasserstein holds n_projections x (n + m) = {self.n_projections} x "
            f"{n + m} projected values, more than {SLICED_LIMIT}: lower n_projections, or use "
            "sinkhorn with backend: online"
        )


@divergences.register("sliced-wasserstein", options=SlicedWassersteinOptions)
class SlicedWasserstein:
    r"""Sliced Wasserstein SW_p^p: the mean W_p^p over random 1-D projections.

    .. math::

        SW_p^p(Q, P) = \mathbb{E}_{\theta \sim \mathcal{U}(S^{d-1})}
            W_p^p(\theta_\# Q, \theta_\# P)
            \approx \frac1L \sum_{l=1}^{L} W_p^p(\theta_{l\#} \hat Q, \theta_{l\#} \hat P),

    each 1-D term solved exactly by sorting (``ot.sliced_wasserstein_distance``). Returned
    without the :math:`p`-th root, so it is an unbiased Monte Carlo estimate over the
    projections, on the same scale as ``wasserstein`` divided by the dimension (for two isotropic
    Gaussians, :math:`SW_2^2 = \|m_1 - m_2\|^2 / d + (s_1 - s_2)^2`), and its gradient is finite
    at zero. Cost :math:`O(L\,(n + m)(d + \log(n + m)))` time and :math:`O(L (n + m))` memory:
    linear in the samples, limited to :math:`L (n + m) \le 2^{30}` (``SLICED_LIMIT``).

    ``seed=None`` (default) draws fresh projections at every call from PyTorch's generator, so
    training sees new directions each step and is reproducible under ``torch.manual_seed``. An
    integer ``seed`` fixes the projections (drawn once per dimension from a private generator,
    the same on every device): deterministic, for evaluation and tests, but blind to every other
    direction if used for training.
    """

    def __init__(self, options: SlicedWassersteinOptions):
        self.options = options
        self._fixed: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}

    def projections(self, dim: int, like: Tensor) -> Tensor:
        """Unit directions, shape ``(dim, n_projections)``, with ``like``'s dtype and device."""
        o = self.options
        if o.seed is None:
            # drawn in float32 whatever the input dtype, so a seed gives the same directions
            theta = torch.randn(dim, o.n_projections, device=like.device).to(like.dtype)
        else:
            key = (dim, like.dtype, like.device)
            if key not in self._fixed:
                gen = torch.Generator().manual_seed(o.seed)
                draw = torch.randn(dim, o.n_projections, generator=gen, dtype=torch.float64)
                self._fixed[key] = draw.to(like.device, like.dtype)
            theta = self._fixed[key]
        return theta / theta.norm(dim=0, keepdim=True)

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        x, y = flatten_pair(samples, prior_samples)
        theta = self.projections(x.shape[1], x)
        _, log = ot.sliced_wasserstein_distance(x, y, p=self.options.p, projections=theta, log=True)
        return log["projected_emds"].mean()

    def __repr__(self) -> str:
        o = self.options
        return f"SlicedWasserstein(n_projections={o.n_projections}, p={o.p}, seed={o.seed})"


__all__ = ["EXACT_LIMIT", "SlicedWasserstein", "SlicedWassersteinOptions", "Wasserstein",
           "WassersteinOptions"]
