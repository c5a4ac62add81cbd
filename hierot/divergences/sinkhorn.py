r"""Debiased Sinkhorn divergence, the alternative latent divergence of the paper's Sec. 2.2.

The paper notes that the top divergence :math:`\mathcal{D}_N` of Eq. (10) can be "a Wasserstein
distance computed using the Sinkhorn algorithm (Cuturi, 2013)", as in Sinkhorn autoencoders
(Patrini et al., 2018). We use the debiased Sinkhorn divergence of Genevay et al. (2018) and
Feydy et al. (2019), which is zero when both samples coincide, through GeomLoss or POT.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Callable
from typing import Literal

import ot
import torch
from pydantic import Field, model_validator
from torch import Tensor

from hierot.divergences._sinkhorn_online import sinkhorn_online
from hierot.divergences.helpers import flatten_pair, ground_cost
from hierot.divergences.tiled import DEFAULT_TILE, oom_guard
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, divergences

GEOMLOSS_ONLY = ("reach", "geomloss_backend")
POT_ONLY = ("max_iter", "tolerance")
ONLINE_ONLY = ("tile_size",)
OWN_OPTIONS = {
    "geomloss": GEOMLOSS_ONLY, "pot": POT_ONLY, "online": ONLINE_ONLY, "auto": ONLINE_ONLY,
}
DENSE_LIMIT = 2**32
"""Most entries of one dense n x m cost matrix (16 GiB in float32): larger is refused."""
FINAL_UPDATES = 3  # averaged updates at the final epsilon before POT takes over
POT_TOLERANCE = 1e-3
"""Default ``tolerance`` of the POT backend (POT's ``stopThr``: the L2 norm of the column
marginal's error). Measured at batch 128, d = 2, blur 0.05 (``python -m benchmarks
sinkhorn_solves``, 3 seeds): the value within 2 % of a solve to 1e-6 and the gradient within
3-4 %, about a tenth of the batch-to-batch spread of the value (16 %), in a median of 1,241
iterations of the cross term (at most 1,471: POT's default ``max_iter`` of 1,000 may stop it a
little short of the tolerance, with a warning); 1e-2 was 19-26 % off, and 1e-6 needs
50,000-64,000 iterations, so it always ran to ``max_iter``."""


class SinkhornOptions(ComponentOptions):
    """Options of ``sinkhorn`` (:class:`Sinkhorn`)."""

    backend: Literal["geomloss", "pot", "online", "auto"] = Field(
        "geomloss", description="solver: geomloss (tensorized by default), pot, online (hierot's "
        "tiled solver, linear memory), auto (geomloss tensorized up to tile_size samples a side, "
        "else online)",
    )
    p: Literal[1, 2] = Field(2, description="exponent of the cost |x - y|^p / p")
    blur: float = Field(0.05, gt=0, description="entropic scale; epsilon = blur ** p")
    scaling: float = Field(
        0.5, gt=0, lt=1, description="epsilon-annealing ratio per step (near 1: slow, exact)"
    )
    reach: float | None = Field(
        None, gt=0, description="geomloss: unbalanced transport scale (None: balanced)"
    )
    geomloss_backend: Literal["tensorized", "online", "multiscale"] = Field(
        "tensorized", description="geomloss: how the cost matrix is handled"
    )
    max_iter: int = Field(1000, gt=0, lt=2**31, description="pot: Sinkhorn iterations at most")
    tolerance: float = Field(
        POT_TOLERANCE, gt=0,
        description="pot: stop when the L2 error of the marginal (POT's stopThr) is below it",
    )
    tile_size: int = Field(
        DEFAULT_TILE, ge=16, le=2**15, description="online, auto: rows and columns of one tile"
    )

    @model_validator(mode="after")
    def _options_match_backend(self):
        own = OWN_OPTIONS[self.backend]
        foreign = [f for fields in OWN_OPTIONS.values() for f in fields if f not in own]
        # a default is not a choice: the resolved spec (every default written out) must reload
        defaults = type(self).model_fields
        for field in dict.fromkeys(foreign):
            if getattr(self, field) != defaults[field].default:
                owners = [b for b, fields in OWN_OPTIONS.items() if field in fields]
                raise ValueError(
                    f"{field} only applies to backend {' or '.join(map(repr, owners))}, "
                    f"not {self.backend!r}"
                )
        return self

    def resolved_backend(self, n: int, m: int) -> str:
        """The solver that runs for ``n`` against ``m`` samples (``auto`` resolved)."""
        if self.backend != "auto":
            return self.backend
        return "geomloss" if max(n, m) <= self.tile_size else "online"

    def size_error(self, n: int, m: int, dim: int) -> str | None:
        """Why ``n`` encoded against ``m`` prior samples cannot work (None: they can)."""
        backend = self.resolved_backend(n, m)
        keops = backend == "geomloss" and self.geomloss_backend != "tensorized"
        dense = backend != "online" and not keops
        if dense and n * m > DENSE_LIMIT:
            return (
                f"backend: {backend} holds {n} x {m} cost matrices ({n * m * 4 / 2**30:.0f} GiB "
                "each in float32); use backend: online (or auto)"
            )
        return None


@divergences.register("sinkhorn", options=SinkhornOptions)
class Sinkhorn:
    r"""Debiased Sinkhorn divergence S_eps with cost |x - y|^p / p (GeomLoss or POT).

    With :math:`\varepsilon = \mathrm{blur}^p`, the entropic transport cost

    .. math::

        \mathrm{OT}_\varepsilon(Q, P) = \min_{\pi \in \Pi(Q, P)} \int C \, d\pi
            + \varepsilon\, \mathrm{KL}(\pi \,\|\, Q \otimes P)

    is debiased into the Sinkhorn divergence

    .. math::

        S_\varepsilon(Q, P) = \mathrm{OT}_\varepsilon(Q, P)
            - \tfrac12 \mathrm{OT}_\varepsilon(Q, Q) - \tfrac12 \mathrm{OT}_\varepsilon(P, P),

    which is non-negative, zero iff :math:`Q = P`, tends to :math:`W_p^p(Q, P) / p` as
    :math:`\varepsilon \to 0` (so :math:`\tfrac12 W_2^2` for the default ``p = 2``) and to an
    energy-distance MMD as :math:`\varepsilon \to \infty`. The samples are given uniform weights.

    Backends compute the same :math:`S_\varepsilon`, with the same options ``p`` and ``blur``:

    * ``geomloss`` (default): ``geomloss.SamplesLoss("sinkhorn", debias=True)`` with
      :math:`\varepsilon`-scaling (annealing from the data's diameter down to ``blur`` by a factor
      ``scaling`` per step), so small blurs converge in a few dozen iterations. ``reach`` makes it
      unbalanced (soft marginals with KL penalty :math:`\mathrm{reach}^p`).
      ``geomloss_backend="tensorized"`` stores the :math:`n \times m` cost; ``online`` and
      ``multiscale`` need PyKeOps and use :math:`O(n + m)` memory.
    * ``pot``: POT's log-domain Sinkhorn (``ot.bregman.sinkhorn_log``) run to ``tolerance`` on the
      marginals or ``max_iter`` iterations, for each of :math:`QP, QQ, PP`, in float64 (float32
      round-off stalls the marginal error near 1e-5). Each solve is warm-started by
      :math:`\varepsilon`-annealing: one averaged update of the dual potentials (Feydy et al.,
      2019) per :math:`\varepsilon` from the largest cost down to ``blur ** p``, by a factor
      ``scaling ** p`` (:func:`annealed_potentials`). The symmetric self-terms then converge in
      about ten POT iterations instead of hundreds to thousands. Gradients use the envelope
      theorem (the optimal plan), not back-propagation through the iterations: the value and
      gradient of ``ot.solve(M, a, b, reg, reg_type="entropy", grad="envelope")``, which POT
      0.9.7 cannot warm-start (it does not pass ``potentials_init`` to its balanced Sinkhorn).
      Unlike GeomLoss, the final :math:`\varepsilon` is solved to ``tolerance`` (default
      :data:`POT_TOLERANCE`): when :math:`\varepsilon` is small against the costs (``blur``
      far below the spread of the data) the cross term needs many iterations (1,100-1,500 at
      the default blur, batch 128, d = 2, so it may stop at ``max_iter``); prefer a larger
      ``blur`` or ``geomloss`` there. The iterations of the last call are in the attribute
      ``iterations``.

    * ``online``: GeomLoss's loop (the same annealing, averaged updates and last extrapolation
      with the envelope gradient) with soft :math:`c`-transforms computed tile by tile
      (:func:`~hierot.divergences.tiled.softmin`): :math:`O((n + m) d)` memory, plain PyTorch,
      the same value and gradient as ``geomloss`` tensorized; balanced only.
    * ``auto``: ``geomloss`` (tensorized) when :math:`\max(n, m)` is at most ``tile_size``,
      else ``online``.

    Options of another backend are an error. Cost :math:`O(nm\,d)` per iteration; memory
    :math:`O(nm)` except for ``online`` and geomloss's ``online``/``multiscale``.
    """

    def __init__(self, options: SinkhornOptions):
        self.options = options
        self.not_converged = 0
        """How many POT solves reached ``max_iter`` (warned about once, at the first)."""
        self.iterations: list[int] = []
        """POT's Sinkhorn iterations in the last call, for OT(x, y), OT(x, x), OT(y, y)."""
        self._online: Callable[[Tensor, Tensor], Tensor] | None = None
        if options.backend in ("online", "auto"):
            self._online = functools.partial(
                sinkhorn_online, p=options.p, blur=options.blur, scaling=options.scaling,
                tile_size=options.tile_size,
            )
        if options.backend in ("geomloss", "auto"):
            keops = options.geomloss_backend != "tensorized"
            if keops and importlib.util.find_spec("pykeops") is None:
                raise HierotError(
                    f"sinkhorn geomloss_backend={options.geomloss_backend!r} needs PyKeOps: "
                    f"`pip install pykeops` (or `pip install hierot[keops]`), "
                    f"or use geomloss_backend='tensorized'"
                )
            import geomloss

            self._loss = geomloss.SamplesLoss(
                "sinkhorn",
                p=options.p,
                blur=options.blur,
                scaling=options.scaling,
                reach=options.reach,
                debias=True,
                backend=options.geomloss_backend,
            )
        elif options.backend == "pot":
            self._loss = self._pot

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        x, y = flatten_pair(samples, prior_samples)
        backend = self.options.resolved_backend(len(x), len(y))
        if backend == "online":
            # resolved_backend gives "online" only for backend "online" or "auto", set up above
            assert self._online is not None
            with oom_guard("sinkhorn", len(x), len(y), backend, "use a smaller tile_size"):
                return self._online(x, y)
        # GeomLoss ends with torch.autograd.set_grad_enabled(True), which would switch gradients
        # back on for the rest of a caller's torch.no_grad() block: restore the caller's mode.
        advice = "use backend: online"
        with torch.set_grad_enabled(torch.is_grad_enabled()), oom_guard(
            "sinkhorn", len(x), len(y), backend, advice
        ):
            return self._loss(x, y)

    # -- POT ------------------------------------------------------------------------------------
    def _pot(self, x: Tensor, y: Tensor) -> Tensor:
        self.iterations = []
        return self._ot_eps(x, y) - 0.5 * (self._ot_eps(x, x) + self._ot_eps(y, y))

    def _ot_eps(self, x: Tensor, y: Tensor) -> Tensor:
        """Entropic OT with uniform weights; gradient (wrt the cost) by the envelope theorem.

        With the optimal plan P, OT_eps = <C, P> + eps * sum(P log P) (POT's ``entropy``
        regularisation: eps * KL(P | a b^T) - eps * log(nm), a constant that cancels in the
        debiased combination), and its gradient with respect to C is P itself.
        """
        o = self.options
        cost = ground_cost(x, y, o.p) / o.p
        plan = self._pot_plan(cost.detach().double(), symmetric=x is y).to(cost.dtype)
        eps = o.blur**o.p
        return (cost * plan).sum() + eps * torch.special.xlogy(plan, plan).sum()

    def _pot_plan(self, cost: Tensor, symmetric: bool) -> Tensor:
        """The optimal entropic plan from POT, warm-started by epsilon-annealing."""
        o = self.options
        n, m = cost.shape
        a = cost.new_full((n,), 1.0 / n)
        b = cost.new_full((m,), 1.0 / m)
        log_a, log_b = a.log(), b.log()
        schedule = epsilon_schedule(cost.max().item(), o.blur**o.p, o.scaling**o.p)
        f, g = annealed_potentials(cost, log_a, log_b, schedule, symmetric)
        # POT's log-scalings are log a + f / eps and log b + g / eps
        warm = (log_a + f / schedule[-1], log_b + g / schedule[-1])
        plan, log = ot.bregman.sinkhorn_log(
            a, b, cost, reg=schedule[-1], numItermax=o.max_iter, stopThr=o.tolerance,
            warmstart=warm, log=True, warn=False,  # reported once here, not at every step
        )
        # POT checks the error every tenth iteration: niter is the 0-based index of the last
        self.iterations.append(int(log["niter"]) + 1)
        if float(log["err"][-1]) >= o.tolerance:  # POT stops early only below the tolerance
            self._not_converged()
        return plan

    def _not_converged(self) -> None:
        """Count a solve that reached ``max_iter``; warn at the first only (not once per step)."""
        self.not_converged += 1
        if self.not_converged == 1:
            o = self.options
            warnings.warn(
                f"sinkhorn (POT, blur {o.blur}): a solve reached max_iter={o.max_iter} before the "
                f"marginal error fell below tolerance={o.tolerance}; the value and gradient are "
                "those of the last iterate. Raise max_iter or blur, or use backend: geomloss "
                "(reported once; the count is in the divergence's `not_converged`)",
                RuntimeWarning, stacklevel=2,
            )

    def __repr__(self) -> str:
        o = self.options
        own = OWN_OPTIONS[o.backend]
        fields = ("backend", "p", "blur", *own)
        return "Sinkhorn(" + ", ".join(f"{f}={getattr(o, f)!r}" for f in fields) + ")"


def epsilon_schedule(max_cost: float, eps: float, ratio: float) -> list[float]:
    """Epsilons from the largest cost down to ``eps`` by ``ratio`` (GeomLoss's annealing)."""
    schedule = []
    current = max_cost
    while current > eps:
        schedule.append(current)
        current *= ratio
    return [*schedule, eps]


def annealed_potentials(
    cost: Tensor, log_a: Tensor, log_b: Tensor, schedule: list[float], symmetric: bool
) -> tuple[Tensor, Tensor]:
    """Dual potentials (f, g) of OT_eps(a, b) annealed along ``schedule``: a warm start.

    The averaged updates f <- (f + T_b(g)) / 2, g <- (g + T_a(f)) / 2 with the soft c-transform
    T_b(g)_i = -eps log sum_j b_j exp((g_j - C_ij) / eps) (Feydy et al., 2019), one per epsilon
    and ``FINAL_UPDATES`` at the last. On the symmetric problems OT(a, a), which need only f
    (g = f), the averaged update is GeomLoss's symmetric Sinkhorn and lands close to the fixed
    point, where POT's alternating updates from zero take hundreds to thousands of iterations.
    """
    f = torch.zeros_like(log_a)
    g = f if symmetric else torch.zeros_like(log_b)
    steps = [1] * (len(schedule) - 1) + [FINAL_UPDATES]
    for eps, count in zip(schedule, steps):
        for _ in range(count):
            f_new = -eps * torch.logsumexp(log_b + (g - cost) / eps, dim=1)
            if symmetric:
                f = g = 0.5 * (f + f_new)
            else:
                g_new = -eps * torch.logsumexp(log_a[:, None] + (f[:, None] - cost) / eps, dim=0)
                f, g = 0.5 * (f + f_new), 0.5 * (g + g_new)
    return f, g


__all__ = ["POT_TOLERANCE", "Sinkhorn", "SinkhornOptions", "annealed_potentials",
           "epsilon_schedule"]
