r"""Debiased Sinkhorn divergence, the alternative latent divergence of the paper's Sec. 2.2.

The paper notes that the top divergence :math:`\mathcal{D}_N` of Eq. (10) can be "a Wasserstein
distance computed using the Sinkhorn algorithm (Cuturi, 2013)", as in Sinkhorn autoencoders
(Patrini et al., 2018). We use the debiased Sinkhorn divergence of Genevay et al. (2018) and
Feydy et al. (2019), which is zero when both samples coincide, through GeomLoss or POT.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import ot
from pydantic import Field, model_validator
from torch import Tensor

from hierot.divergences._common import flatten_pair, ground_cost
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, divergences

GEOMLOSS_ONLY = ("scaling", "reach", "geomloss_backend")
POT_ONLY = ("max_iter", "tolerance")


@divergences.register("sinkhorn")
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
    * ``pot``: POT's log-domain Sinkhorn (``ot.solve(..., method="sinkhorn_log")``) run to
      ``tolerance`` on the marginals or ``max_iter`` iterations, three times (for
      :math:`QP, QQ, PP`). Gradients use the envelope theorem (the optimal plan), not
      back-propagation through the iterations. Without :math:`\varepsilon`-scaling it needs
      many iterations when :math:`\varepsilon` is small against the costs: prefer a larger
      ``blur`` or ``geomloss``.

    Options of one backend given with the other are an error. Cost :math:`O(nm\,d)` per
    iteration; memory :math:`O(nm)` except for geomloss's ``online``/``multiscale``.
    """

    class Options(ComponentOptions):
        backend: Literal["geomloss", "pot"] = Field("geomloss", description="solver library")
        p: Literal[1, 2] = Field(2, description="exponent of the cost |x - y|^p / p")
        blur: float = Field(0.05, gt=0, description="entropic scale; epsilon = blur ** p")
        scaling: float = Field(
            0.5, gt=0, lt=1, description="geomloss: epsilon-annealing ratio (near 1: slow, exact)"
        )
        reach: float | None = Field(
            None, gt=0, description="geomloss: unbalanced transport scale (None: balanced)"
        )
        geomloss_backend: Literal["tensorized", "online", "multiscale"] = Field(
            "tensorized", description="geomloss: how the cost matrix is handled"
        )
        max_iter: int = Field(1000, gt=0, description="pot: Sinkhorn iterations at most")
        tolerance: float = Field(1e-6, gt=0, description="pot: stop when marginals are this close")

        @model_validator(mode="after")
        def _options_match_backend(self):
            foreign = POT_ONLY if self.backend == "geomloss" else GEOMLOSS_ONLY
            # a default is not a choice: the resolved spec (every default written out) must reload
            defaults = type(self).model_fields
            given = [f for f in foreign if getattr(self, f) != defaults[f].default]
            if given:
                other = "pot" if self.backend == "geomloss" else "geomloss"
                raise ValueError(
                    f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to "
                    f"backend {other!r}, not {self.backend!r}"
                )
            return self

    def __init__(self, options: Options):
        self.options = options
        if options.backend == "geomloss":
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
        else:
            self._loss = self._pot

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor:
        x, y = flatten_pair(samples, prior_samples)
        return self._loss(x, y)

    # -- POT ------------------------------------------------------------------------------------
    def _pot(self, x: Tensor, y: Tensor) -> Tensor:
        return self._ot_eps(x, y) - 0.5 * (self._ot_eps(x, x) + self._ot_eps(y, y))

    def _ot_eps(self, x: Tensor, y: Tensor) -> Tensor:
        """Entropic OT with uniform weights; gradient (wrt the cost) by the envelope theorem."""
        o = self.options
        cost = ground_cost(x, y, o.p) / o.p
        # reg_type="entropy" adds eps * sum(pi log pi) = eps * KL(pi | a b^T) - eps * log(nm):
        # the constant cancels in the debiased combination.
        result = ot.solve(
            cost,
            reg=o.blur**o.p,
            reg_type="entropy",
            method="sinkhorn_log",
            max_iter=o.max_iter,
            tol=o.tolerance,
            grad="envelope",
        )
        return result.value

    def __repr__(self) -> str:
        o = self.options
        own = GEOMLOSS_ONLY if o.backend == "geomloss" else POT_ONLY
        fields = ("backend", "p", "blur", *own)
        return "Sinkhorn(" + ", ".join(f"{f}={getattr(o, f)!r}" for f in fields) + ")"
