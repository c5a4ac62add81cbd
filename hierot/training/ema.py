r"""``train.ema``: an exponential moving average of the weights (Polyak and Juditsky, 1992).

After step :math:`t` (counting from 1), every ``every`` steps once :math:`t` is past
``start_step``, each parameter's average moves toward the parameter,

.. math:: \bar\theta_t = \beta\,\bar\theta_{t-1} + (1 - \beta)\,\theta_t ,
   \qquad \beta = \texttt{decay} \in (0, 1),

and up to ``start_step`` it equals the parameters (:math:`\bar\theta_t = \theta_t`), so early,
fast-moving weights do not weigh on it. VDVAE (Child, 2021) and NVAE (Vahdat and Kautz, 2020)
evaluate and sample with such averages (decay 0.999-0.9999). The averages are float32 copies of
the float32 parameters (autocast leaves the parameters in float32 under bf16 and fp16), updated
in place by one fused ``_foreach_lerp_``; under DDP every process holds the same parameters after
each step, so every process holds the same average without communication.

**BatchNorm buffers** (running means and variances) are not averaged: the average's state dict
(:meth:`WeightEMA.state_dict`) takes them from the model as they are. They are themselves an
exponential average (momentum 0.1) of batch statistics computed with the raw weights; with a
decay close to 1 the averaged weights move slowly, and the two stay close (see docs/precision.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """The moving average of ``model``'s floating-point parameters under ``spec`` (``train.ema``).

    Parameters
    ----------
    spec:
        ``decay``, ``start_step`` and ``every`` (see the module docstring).
    model:
        The model whose parameters are averaged (the averages start as copies of them).
    """

    def __init__(self, spec: Any, model: nn.Module):
        self.decay, self.start_step, self.every = spec.decay, spec.start_step, spec.every
        self.model = model
        named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
        self.names = [n for n, _ in named]
        self.parameters = [p for _, p in named]
        self.averages = [p.detach().clone() for p in self.parameters]

    def update(self, step: int) -> None:
        """Fold in the parameters after step ``step`` (1 for the first)."""
        params = [p.detach() for p in self.parameters]
        if step <= self.start_step:
            torch._foreach_copy_(self.averages, params)
        elif (step - self.start_step) % self.every == 0:
            torch._foreach_lerp_(self.averages, params, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the averages in place of the parameters (buffers, e.g.
        BatchNorm's running statistics, as the model holds them)."""
        state = self.model.state_dict()
        for name, average in zip(self.names, self.averages):
            state[name] = average.detach().clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load the averages from a state dict written by :meth:`state_dict`."""
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"the EMA weights lack {', '.join(missing[:5])}")
        with torch.no_grad():
            for name, average in zip(self.names, self.averages):
                average.copy_(state[name])

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The model holds the averages inside the block, its own parameters again after it
        (restored bit for bit)."""
        params = [p.detach() for p in self.parameters]
        saved = [p.clone() for p in params]
        torch._foreach_copy_(params, self.averages)
        try:
            yield
        finally:
            torch._foreach_copy_(params, saved)


__all__ = ["WeightEMA"]
