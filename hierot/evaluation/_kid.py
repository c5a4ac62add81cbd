r"""Kernel inception distance (KID): an unbiased MMD² between feature sets, over subsets.

Bińkowski et al., *Demystifying MMD GANs*, ICLR 2018. With the cubic polynomial kernel
:math:`k(x, y) = (x^\top y / d + 1)^3` of :math:`d`-dimensional features, real features
:math:`X = \{x_i\}_{i=1}^m` and generated :math:`Y = \{y_j\}_{j=1}^m`, the unbiased estimate

.. math::

    \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne i'} k(x_i, x_{i'})
      + \frac{1}{m(m-1)} \sum_{j \ne j'} k(y_j, y_{j'}) - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j)

has expectation exactly :math:`\mathrm{MMD}^2` (0 when both sets come from one distribution;
the estimate may then be negative), unlike the Fréchet distance, whose bias depends on the
number of samples. As in clean-fid and torch-fidelity, KID is the mean of the estimate over
:data:`SUBSETS` random pairs of subsets of :data:`SUBSET_SIZE` points each (fewer when a set is
smaller), reported with the standard deviation over subsets and a percentile bootstrap interval
of the mean (:mod:`hierot.evaluation._bootstrap`). Named after Inception features, computed here in
whichever extractor the run uses.
"""

from __future__ import annotations

import numpy as np
import torch

from hierot.evaluation._bootstrap import CONFIDENCE, RESAMPLES, interval

SUBSETS = 100
SUBSET_SIZE = 1000


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:math:`(a b^\\top / d + 1)^3`, float64 from float32 inner products.

    The inner products are float32 (twice as fast; their relative error, about 1e-7 times
    :math:`\\sqrt d`, is far below the spread of KID over subsets), the rest float64.
    """
    inner = (a.float() @ b.float().T).double()
    return (inner / a.shape[1] + 1.0) ** 3


def _within(x: torch.Tensor) -> float:
    k = polynomial_kernel(x, x)
    return float((k.sum() - k.diagonal().sum()) / (len(x) * (len(x) - 1)))


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, within_x: float | None = None) -> float:
    """The unbiased MMD² (module docstring) of two ``(m, d)`` and ``(n, d)`` sets, m, n >= 2
    (``within_x``: the first term, when already known)."""
    within_x = _within(x) if within_x is None else within_x
    return float(within_x + _within(y) - 2 * polynomial_kernel(x, y).mean())


def kid(real, fake, *, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE, seed: int = 0,
        resamples: int = RESAMPLES, cache: dict | None = None) -> dict:
    """KID of ``fake`` against ``real`` features (module docstring).

    The real subsets depend only on ``seed``, the size and ``real``, so a ``cache`` (a dict kept
    with the real set) saves their kernel sums when one real set is compared with many.

    Returns
    -------
    dict
        ``kid`` (the mean over subsets), ``std`` (over subsets), ``subsets``, ``subset_size`` and
        ``interval`` (percentile bootstrap of the mean, :data:`CONFIDENCE`).
    """
    x = torch.as_tensor(real).detach().cpu().double()
    y = torch.as_tensor(fake).detach().cpu().double()
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs at least 2 points a side, got {len(x)} and {len(y)}")
    real_draws = torch.Generator().manual_seed(seed)
    fake_draws = torch.Generator().manual_seed(seed + 1)
    cache = {} if cache is None else cache
    drawn: list[float] = []
    for s in range(subsets):
        rows = torch.randperm(len(x), generator=real_draws)[:size]
        if (seed, size, s) not in cache:
            cache[(seed, size, s)] = _within(x[rows])
        drawn.append(mmd2_unbiased(x[rows], y[torch.randperm(len(y), generator=fake_draws)[:size]],
                                   cache[(seed, size, s)]))
    values = np.array(drawn)
    picks = torch.randint(subsets, (resamples, subsets), generator=fake_draws).numpy()
    return {"kid": float(values.mean()), "std": float(values.std()), "subsets": subsets,
            "subset_size": size,
            "interval": interval(values[picks].mean(1), float(values.mean()), CONFIDENCE)}


__all__ = ["SUBSETS", "SUBSET_SIZE", "kid", "mmd2_unbiased", "polynomial_kernel"]
