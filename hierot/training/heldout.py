"""Held-out evaluation during training (``train.eval_every``) and the ``best`` checkpoint.

Every ``eval_every`` steps the objective's terms are computed on the test split: in eval mode
(BatchNorm's running statistics), without gradients, in the training precision, over the full
batches of ``train.batch_size`` test points (the divergence estimates depend on the batch size,
so the numbers stay comparable with the training curves; a test split smaller than a batch is one
batch). The random draws (reparameterisations, prior samples) come from a generator seeded with
the spec's seed and forked off the training stream, so evaluating changes nothing in training and
a resumed run stays exact. The terms are named ``val_<term>``, ``val_w_<term>`` and ``val_total``.

The run's ``best`` checkpoint is the one with the lowest (``best_mode: min``) or highest value of
``train.best_metric`` among the evaluations so far; it is written to ``checkpoints/best.pt``
(atomically, beside the latest checkpoints) and its step and value are kept in every checkpoint.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from hierot._utils import identity, seeded_on
from hierot.errors import HierotError


class HeldOutEvaluation:
    """The objective's terms on ``test_x``, as ``val_*`` floats.

    Parameters
    ----------
    objective:
        The objective (unwrapped: outside a data-parallel step its gather is the identity).
    test_x:
        The test split (any device; moved batch by batch).
    batch_size:
        Points per batch (the training batch size).
    autocast:
        Returns the context of the training precision.
    seed:
        Seeds the evaluation's own random draws.
    to_float:
        Converts a batch of stored values to what the model sees (``DataSplits.to_float``;
        default: the values are already float).
    """

    def __init__(self, objective: nn.Module, test_x: Tensor, batch_size: int, device: torch.device,
                 autocast=contextlib.nullcontext, seed: int = 0,
                 to_float: Callable[[Tensor], Tensor] = identity):
        n = len(test_x)
        if n < 2:
            raise HierotError(
                f"train.eval_every: the test split has {n} example(s); held-out evaluation needs "
                f"at least 2 (unset train.eval_every)"
            )
        self.objective, self.test_x, self.device = objective, test_x, device
        self.size = min(batch_size, n)
        self.batches = n // self.size
        self.autocast, self.seed, self.to_float = autocast, seed, to_float

    @torch.no_grad()
    def __call__(self) -> dict[str, float]:
        training = self.objective.training
        self.objective.eval()
        sums: dict[str, Tensor] = {}
        try:
            with seeded_on(self.device, self.seed):
                for b in range(self.batches):
                    rows = self.test_x[b * self.size:(b + 1) * self.size]
                    x = self.to_float(rows.to(self.device))
                    with self.autocast():
                        terms = self.objective(x)
                    row = {**terms.unweighted, **{f"w_{k}": v for k, v in terms.weighted.items()},
                           "total": terms.total}
                    for name, value in row.items():
                        sums[name] = sums.get(name, 0.0) + value.detach().float()
        finally:
            self.objective.train(training)
        values = torch.stack(list(sums.values())).cpu() / self.batches  # one transfer
        return {f"val_{name}": float(v) for name, v in zip(sums, values)}


class BestCheckpoint:
    """Which evaluation was best so far by ``metric`` (``mode``: ``min`` or ``max``)."""

    def __init__(self, metric: str, mode: str = "min"):
        self.metric, self.mode = metric, mode
        self.value: float | None = None
        self.step: int | None = None

    def improved(self, step: int, metrics: dict[str, float]) -> bool:
        """Record ``metrics`` of ``step``; whether they are the best so far."""
        if self.metric not in metrics:
            raise HierotError(
                f"train.best_metric: {self.metric!r} is not a held-out metric; valid: "
                f"{', '.join(sorted(metrics))}"
            )
        value = metrics[self.metric]
        if not math.isfinite(value):
            return False
        better = (self.value is None
                  or (value < self.value if self.mode == "min" else value > self.value))
        if better:
            self.value, self.step = value, step
        return better

    def state(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "value": self.value, "step": self.step}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if state and state.get("metric") == self.metric and state.get("mode") == self.mode:
            self.value, self.step = state["value"], state["step"]


__all__ = ["BestCheckpoint", "HeldOutEvaluation"]
