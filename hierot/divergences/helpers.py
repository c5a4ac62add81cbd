r"""Helpers for writing a divergence, built in or in a plug-in: input checks and distances.

A public module: the example plug-in (``plugins/hierot-energy``) uses it, and so can yours::

    from hierot.divergences.helpers import distance_power, flatten_pair, squared_distances

* :func:`flatten_pair` checks two batches ``(n, *shape)`` and ``(m, *shape)`` (event shapes,
  dtype, device, sample counts) and flattens them to ``(n, d)`` and ``(m, d)``;
* :func:`squared_distances` is the ``(n, m)`` matrix of :math:`\|x_i - y_j\|^2`;
* :func:`distance_power` raises squared distances to :math:`\|x_i - y_j\|^\beta` with a finite
  gradient where two points coincide;
* :func:`ground_cost` is the transport cost :math:`\|x_i - y_j\|^p`, ``p`` in {1, 2}.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hierot.errors import HierotError


def flatten_pair(
    samples: Tensor, prior_samples: Tensor, *, min_samples: int = 1
) -> tuple[Tensor, Tensor]:
    """Check batches ``(n, *shape)`` and ``(m, *shape)``; flatten them to ``(n, d)``, ``(m, d)``.

    Raises
    ------
    HierotError
        If the event shapes, dtypes or devices differ, a batch has fewer than ``min_samples``
        samples, or the dtype is not floating point.
    """
    if samples.dim() < 2 or prior_samples.dim() < 2:
        raise HierotError(
            f"divergence inputs must be batches (n, *shape); got shapes {tuple(samples.shape)} "
            f"and {tuple(prior_samples.shape)}"
        )
    if samples.shape[1:] != prior_samples.shape[1:]:
        raise HierotError(
            f"divergence inputs must share their event shape; got {tuple(samples.shape[1:])} "
            f"(samples) and {tuple(prior_samples.shape[1:])} (prior samples)"
        )
    if samples.dtype != prior_samples.dtype or not samples.dtype.is_floating_point:
        raise HierotError(
            f"divergence inputs must share one floating dtype; got {samples.dtype} and "
            f"{prior_samples.dtype}"
        )
    if samples.device != prior_samples.device:
        raise HierotError(
            f"divergence inputs must be on one device; got {samples.device} and "
            f"{prior_samples.device}"
        )
    n, m = samples.shape[0], prior_samples.shape[0]
    if min(n, m) < min_samples:
        raise HierotError(
            f"this divergence needs at least {min_samples} samples per batch; got {n} and {m}"
        )
    return samples.flatten(1), prior_samples.flatten(1)


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    r"""Pairwise squared Euclidean distances :math:`\|x_i - y_j\|^2`, shape ``(n, m)``.

    Computed as :math:`\|x_i\|^2 + \|y_j\|^2 - 2 x_i^\top y_j` (one matrix product, no
    ``(n, m, d)`` intermediate) and clamped at zero against round-off.
    """
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return sq.clamp_min(0.0)


def ground_cost(x: Tensor, y: Tensor, p: int) -> Tensor:
    r"""The ground cost :math:`\|x_i - y_j\|^p` for ``p`` in {1, 2}, shape ``(n, m)``.

    For ``p = 1`` the square root has a safe gradient (:func:`distance_power`): zero where two
    points coincide.
    """
    sq = squared_distances(x, y)
    return sq if p == 2 else distance_power(sq, 1.0)


def distance_power(squared: Tensor, beta: float) -> Tensor:
    r""":math:`d^\beta` from squared distances :math:`d^2` (``squared``), elementwise, ``beta > 0``.

    Where :math:`d = 0` the value is 0 and the gradient is 0, not NaN: the derivative of
    :math:`d^\beta` is undefined there for :math:`\beta \le 1`, and autograd would return NaN
    (through the square root) or infinity.
    """
    tiny = torch.finfo(squared.dtype).tiny
    positive = squared > tiny
    powered = squared.clamp_min(tiny) ** (beta / 2)
    return torch.where(positive, powered, torch.zeros_like(squared))

__all__ = ["distance_power", "flatten_pair", "ground_cost", "squared_distances"]
