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

**BatchNorm buffers** (running means and variances) follow ``batchnorm``. They are an exponential
average (momentum 0.1) of batch statistics computed with the *raw* weights, and the averaged
weights are not those: at the paper's widths with a decay of 0.999 the averaged network evaluated
with the raw statistics lost most of its sample quality (docs/long-runs.md). So by default
(``batchnorm: recompute``) the statistics are recomputed for the averages, as SWA does
(Izmailov et al., 2018, *Averaging weights leads to wider optima*, Sec. 3.2; torch's
``swa_utils.update_bn``): with the averages swapped in, every BatchNorm layer's statistics are
reset and re-estimated as the plain (cumulative, ``momentum=None``) mean over
``batchnorm_batches`` training batches run through the objective in train mode, without
gradients (:meth:`WeightEMA.recompute_statistics`). The trainer does it before each held-out
evaluation and each checkpoint, so the held-out terms, ``best.pt``, and everything that loads a
checkpoint's average (``eval``, ``sample``, ``plot``) use the same statistics; the raw model's
buffers, the training RNG and the data order are left untouched, so training is the same bit for
bit. ``batchnorm: raw`` takes the raw model's buffers as they are (no extra passes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
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
        self.layers = ({n: m for n, m in model.named_modules()
                        if isinstance(m, nn.modules.batchnorm._BatchNorm)
                        and m.track_running_stats}
                       if spec.batchnorm == "recompute" else {})
        self.batchnorm_batches = spec.batchnorm_batches
        self.statistics: dict[str, torch.Tensor] = {}
        """The BatchNorm buffers recomputed for the averages (empty: none yet, or ``raw``)."""
        self.statistics_step: int | None = None
        """The step whose averages :attr:`statistics` belong to."""

    @property
    def recomputes(self) -> bool:
        """Whether the average has BatchNorm statistics of its own (``batchnorm: recompute`` and
        a BatchNorm layer that tracks running statistics)."""
        return bool(self.layers)

    def update(self, step: int) -> None:
        """Fold in the parameters after step ``step`` (1 for the first)."""
        params = [p.detach() for p in self.parameters]
        if step <= self.start_step:
            torch._foreach_copy_(self.averages, params)
        elif (step - self.start_step) % self.every == 0:
            torch._foreach_lerp_(self.averages, params, 1.0 - self.decay)

    @torch.no_grad()
    def recompute_statistics(self, step: int, batches: Iterable[Any],
                             forward: Callable[[Any], object]) -> None:
        """BatchNorm statistics for the averages after step ``step``: ``forward`` (the
        objective, in train mode, without gradients) on each of ``batches`` with the averages
        swapped in, every layer's statistics reset and averaged cumulatively. The model's own
        buffers, momenta and mode are restored afterwards; the caller forks the RNG. Does
        nothing when the statistics are already those of ``step`` or nothing is recomputed."""
        if not self.recomputes or self.statistics_step == step:
            return
        buffers = {n: b for n, b in self.model.named_buffers()
                   if n.rpartition(".")[0] in self.layers}
        saved = {n: b.clone() for n, b in buffers.items()}
        momenta = {n: m.momentum for n, m in self.layers.items()}
        training = self.model.training
        try:
            with self.swapped(statistics=False):
                for layer in self.layers.values():
                    layer.reset_running_stats()
                    layer.momentum = None  # the cumulative mean over the batches
                self.model.train()
                for batch in batches:
                    forward(batch)
                self.statistics = {n: b.clone() for n, b in buffers.items()}
                self.statistics_step = step
        finally:
            for name, layer in self.layers.items():
                layer.momentum = momenta[name]
            for name, buffer in buffers.items():
                buffer.copy_(saved[name])
            self.model.train(training)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the averages in place of the parameters and, with
        ``batchnorm: recompute``, the recomputed BatchNorm statistics in place of the model's
        (:meth:`recompute_statistics` must have run for the current averages); other buffers
        as the model holds them."""
        state = self.model.state_dict()
        for name, average in zip(self.names, self.averages):
            state[name] = average.detach().clone()
        for name, value in self.statistics.items():
            state[name] = value.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load the averages from a state dict written by :meth:`state_dict` (the BatchNorm
        statistics are recomputed when next needed)."""
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"the EMA weights lack {', '.join(missing[:5])}")
        with torch.no_grad():
            for name, average in zip(self.names, self.averages):
                average.copy_(state[name])
        self.statistics, self.statistics_step = {}, None

    @contextlib.contextmanager
    def swapped(self, statistics: bool = True) -> Iterator[None]:
        """The model holds the averages inside the block (and, with ``statistics``, the
        recomputed BatchNorm statistics when there are some), its own parameters and buffers
        again after it (restored bit for bit)."""
        params = [p.detach() for p in self.parameters]
        saved = [p.clone() for p in params]
        buffers = dict(self.model.named_buffers()) if statistics else {}
        held = {n: buffers[n].clone() for n in self.statistics if n in buffers}
        torch._foreach_copy_(params, self.averages)
        with torch.no_grad():
            for name in held:
                buffers[name].copy_(self.statistics[name])
        try:
            yield
        finally:
            torch._foreach_copy_(params, saved)
            with torch.no_grad():
                for name, value in held.items():
                    buffers[name].copy_(value)


__all__ = ["WeightEMA"]
