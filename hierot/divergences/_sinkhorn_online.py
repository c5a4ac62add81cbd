r"""The debiased Sinkhorn divergence in linear memory: ``sinkhorn`` with ``backend: online``.

GeomLoss's symmetric Sinkhorn loop with :math:`\varepsilon`-scaling (Feydy et al., 2019,
Algorithm 3.5 of Feydy's thesis), its soft :math:`c`-transforms computed tile by tile
(:func:`hierot.divergences.tiled.softmin`), so that no :math:`n \times m` matrix is ever held:

1. :math:`\varepsilon` anneals from :math:`\mathrm{diameter}^p` down to :math:`\mathrm{blur}^p`
   by :math:`\mathrm{scaling}^p` per step (GeomLoss's ``epsilon_schedule``);
2. at each :math:`\varepsilon` the four potentials (:math:`f_{ba}, g_{ab}` of
   :math:`\mathrm{OT}(a, b)`; :math:`f_{aa}`, :math:`g_{bb}` of the symmetric problems) take one
   averaged update :math:`f \leftarrow \tfrac12 (f + T(g))`, without gradients;
3. one last update with gradients, at fixed potentials: by the envelope theorem its gradient is
   that of :math:`S_\varepsilon` at the converged potentials (the plans, not back-propagation
   through the loop), and
   :math:`S_\varepsilon = \langle a, f_{ba} - f_{aa} \rangle + \langle b, g_{ab} - g_{bb} \rangle`.

Same value and gradient as ``geomloss.SamplesLoss("sinkhorn", debias=True,
backend="tensorized")`` (balanced, uniform weights), to round-off.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from hierot.divergences.tiled import softmin


def max_diameter(x: Tensor, y: Tensor) -> float:
    """The diagonal of the bounding box of both samples: the first, coarsest blur."""
    mins = torch.minimum(x.min(0).values, y.min(0).values)
    maxs = torch.maximum(x.max(0).values, y.max(0).values)
    return float((maxs - mins).norm())


def epsilon_schedule(p: int, diameter: float, blur: float, scaling: float) -> list[float]:
    """GeomLoss's temperatures: diameter^p, then by scaling^p per step, ending at blur^p."""
    steps = np.arange(p * np.log(diameter), p * np.log(blur), p * np.log(scaling))
    return [diameter**p, *(float(np.exp(e)) for e in steps), blur**p]


def sinkhorn_online(
    x: Tensor, y: Tensor, *, p: int, blur: float, scaling: float, tile_size: int
) -> Tensor:
    r"""Debiased :math:`S_\varepsilon(x, y)`, uniform weights, in :math:`O((n + m) d)` memory.

    Parameters
    ----------
    x, y:
        Samples ``(n, d)`` and ``(m, d)``.
    p, blur, scaling:
        The cost :math:`\|x - y\|^p / p`, :math:`\varepsilon = \mathrm{blur}^p` and the
        annealing ratio, as in ``sinkhorn``'s options.
    tile_size:
        Rows and columns per tile of the soft :math:`c`-transforms.

    Returns
    -------
    Tensor
        The scalar :math:`S_\varepsilon`, differentiable (once) in ``x`` and ``y``.
    """
    n, m = len(x), len(y)
    a_log = x.new_full((n,), -math.log(n))
    b_log = y.new_full((m,), -math.log(m))
    diameter = max_diameter(x.detach(), y.detach())
    schedule = epsilon_schedule(p, diameter if diameter > 0 else blur, blur, scaling)

    def transform(eps, source, target, h):
        return softmin(source, target, h, eps, p=p, tile_size=tile_size)

    with torch.no_grad():
        xd, yd = x.detach(), y.detach()
        eps = schedule[0]
        f_ba, g_ab = transform(eps, xd, yd, b_log), transform(eps, yd, xd, a_log)
        f_aa, g_bb = transform(eps, xd, xd, a_log), transform(eps, yd, yd, b_log)
        for eps in schedule:  # symmetric (averaged) updates, GeomLoss's sinkhorn_loop
            ft_ba = transform(eps, xd, yd, b_log + g_ab / eps)
            gt_ab = transform(eps, yd, xd, a_log + f_ba / eps)
            ft_aa = transform(eps, xd, xd, a_log + f_aa / eps)
            gt_bb = transform(eps, yd, yd, b_log + g_bb / eps)
            f_ba, g_ab = 0.5 * (f_ba + ft_ba), 0.5 * (g_ab + gt_ab)
            f_aa, g_bb = 0.5 * (f_aa + ft_aa), 0.5 * (g_bb + gt_bb)
    # the last extrapolation, differentiable at fixed potentials (each in its first argument)
    eps = schedule[-1]
    f_ba, g_ab = transform(eps, x, y, b_log + g_ab / eps), transform(eps, y, x, a_log + f_ba / eps)
    f_aa, g_bb = transform(eps, x, x, a_log + f_aa / eps), transform(eps, y, y, b_log + g_bb / eps)
    return (f_ba - f_aa).mean() + (g_ab - g_bb).mean()
