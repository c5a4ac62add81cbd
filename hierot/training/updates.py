r"""One update's gradient: its norm, the decision to take or skip it, and clipping.

After the backward pass the gradients of every parameter are reduced to their L2 norms in one
fused ``_foreach_norm`` per device and dtype, and those to the global norm

.. math:: \|g\| = \Big(\sum_i \|g_i\|_2^2\Big)^{1/2},

read back in one device sync. That one pass serves three ends: the finite check (a NaN or an
infinity makes its norm non-finite), the ``grad_norm`` column of ``metrics.csv``, and the
clipping of ``optimizer.clip_grad_norm`` (the gradients are scaled by
:math:`\min(1, c / (\|g\| + 10^{-6}))`, as :func:`torch.nn.utils.clip_grad_norm_` does, without
computing the norms again).

``train.skip_update`` (VDVAE, Child 2021, Sec. 4: "we skip updates with a gradient norm above a
threshold") then skips an update whose loss or gradient is not finite (``nonfinite``) or whose
norm is above ``grad_norm_above``: the optimiser's step is not taken, so its state (Adam's
moments and step count) is untouched, and the model's buffers (BatchNorm's running statistics,
which the forward pass of a bad batch would have moved, or made NaN) are put back as they were
before the step; under fp16 the loss scaler is told (a non-finite gradient
halves the scale as an overflow does; a finite one over the threshold leaves scale and growth
count as they were). The learning-rate schedule and the objective's schedules still advance: a
skipped step counts toward ``train.steps``, as the batch it drew is consumed. Each skip is logged
with its step and counted; ``max_consecutive`` skips in a row stop the run as a non-finite value
does without ``skip_update``: cleanly, with the last (finite) checkpoint kept.

Without ``skip_update`` a non-finite loss or gradient stops the run, except under fp16, where
an overflow is the loss scaler's to handle (the step is skipped, the scale halved, the skip
counted).

With ``train.fused_update`` (:mod:`hierot.training.fused_update`) the norms are those of the
bfloat16 gradients, taken by the fused kernel, and clipping is its scale factor: the gradients
themselves are not rewritten.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hierot.errors import NonFiniteLossError
from hierot.precision import Precision
from hierot.training.fused_update import FusedBf16Adam
from hierot.training.weight_copies import LowPrecisionWeights, low_precision_weights

_log = logging.getLogger("hierot.training")


def norms(tensors: list[Tensor], device: torch.device) -> Tensor:
    """The L2 norm of each tensor, on ``device``: one fused ``_foreach_norm`` per device and
    dtype (optimisers keep some state, e.g. Adam's step count, on the CPU). A NaN or infinity
    makes its norm non-finite. (The L2 norm, not the max-norm: on CPU the fused max-norm is 12x
    slower, 24 ms against 2 ms for the 6.4 M values of the quickstart model, grads and Adam.)"""
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    out = [torch.stack(torch._foreach_norm(group)).to(device, torch.float32)
           for group in groups.values()]
    return torch.cat(out) if out else torch.zeros(0, device=device)


class UpdateGuard:
    """The gradient norm, clipping and ``train.skip_update`` of one trainer.

    Parameters
    ----------
    skip:
        The spec's ``train.skip_update`` (``None``: stop on a non-finite loss or gradient).
    clip:
        ``optimizer.clip_grad_norm`` (``None``: no clipping).
    precision:
        The step's precision (its loss scaler, under fp16).
    parameters:
        The parameters whose gradients are checked, in the optimiser's order.
    device:
        Where the norms are reduced.
    buffers:
        The model's buffers, put back as they were when an update is skipped.
    copies:
        The bf16 copies the forward pass ran on (:mod:`hierot.training.weight_copies`), whose
        gradients are moved to the parameters before the norm is taken (``None``: none).
    fused:
        The optimiser of ``train.fused_update``, which takes the norms of the bfloat16
        gradients, clips in its update and refreshes the copies itself (``None``: none).
    """

    def __init__(self, skip: Any, clip: float | None, precision: Precision,
                 parameters: list[torch.nn.Parameter], device: torch.device,
                 buffers: Sequence[Tensor] = (), copies: LowPrecisionWeights | None = None,
                 fused: FusedBf16Adam | None = None):
        self.skip, self.clip, self.precision = skip, clip, precision
        self.parameters, self.device, self.copies = parameters, device, copies
        self.fused = fused
        skips = skip is not None or precision.scaler is not None
        self.buffers = list(buffers) if skips else []
        self._saved = [b.clone() for b in self.buffers]  # allocated once, refreshed each step
        self.skipped = 0
        """Updates skipped so far (in the whole run, across resumes)."""
        self.consecutive = 0
        """Updates skipped in a row up to the last step."""

    def remember(self) -> None:
        """Keep the buffers as they are before the forward pass (when updates may be skipped)."""
        if self.buffers:
            torch._foreach_copy_(self._saved, self.buffers)

    # -- the loss --------------------------------------------------------------------------------
    def skips_loss(self) -> bool:
        """Whether a non-finite loss skips the update (rather than stopping the run)."""
        return self.skip is not None and self.skip.nonfinite

    # -- the gradient ----------------------------------------------------------------------------
    def grad_norms(self, optimizer: torch.optim.Optimizer) -> tuple[Tensor, Tensor]:
        """Per-parameter gradient norms and the global norm (a 0-d tensor, not yet read back),
        the gradients unscaled first under fp16 (moved from the bf16 copies under bf16; left
        there, and their norms taken by its kernel, under ``train.fused_update``)."""
        if self.fused is not None:
            each = self.fused.gradient_norms(self.device)
            return each, torch.linalg.vector_norm(each)
        if self.copies is not None:
            self.copies.gradients_to_masters()
        self.precision.unscale(optimizer)
        grads = [p.grad for p in self.parameters if p.grad is not None]
        each = norms(grads, self.device)
        return each, torch.linalg.vector_norm(each)

    def reason(self, total: float) -> str | None:
        """Why the update with global gradient norm ``total`` is skipped (``None``: taken).

        A non-finite norm that is not skipped returns ``"stop"``: the caller names the bad
        gradients and stops (or, when every value turns out finite and only the norm overflowed,
        goes on). Under ``train.fused_update`` the gradients are first widened into the
        parameters' ``.grad``, where the caller looks for them.
        """
        if not math.isfinite(total):
            if self.precision.scaler is not None:
                return "fp16 overflow"
            if self.skips_loss():
                return "non-finite gradient"
            if self.fused is not None:
                self.fused.widen_gradients()
            return "stop"
        limit = None if self.skip is None else self.skip.grad_norm_above
        if limit is not None and total > limit:
            return f"gradient norm {total:.4g} above {limit:g}"
        return None

    def clip_(self, total: Tensor) -> None:
        """Scale the gradients to a global norm of at most ``optimizer.clip_grad_norm``, from the
        norm ``total`` already taken: the rule and arithmetic of
        :func:`torch.nn.utils.clip_grad_norm_`, so the result is the same to the bit."""
        if self.clip is None:
            return
        coefficient = torch.clamp(self.clip / (total + 1e-6), max=1.0)
        if self.fused is not None:  # folded into the update: the same float32 product
            self.fused.scale_gradients(float(coefficient))
            return
        grads = [p.grad for p in self.parameters if p.grad is not None]
        torch._foreach_mul_(grads, coefficient)

    # -- counting --------------------------------------------------------------------------------
    def taken(self) -> None:
        """An update was taken: the run of consecutive skips ends (and the bf16 copies of the
        weights are out of date, unless ``train.fused_update`` wrote them with the masters)."""
        self.consecutive = 0
        if self.copies is not None and self.fused is None:  # the fused update wrote them
            self.copies.invalidate()

    def skipped_update(self, step: int, reason: str, optimizer: torch.optim.Optimizer,
                       kept: str) -> None:
        """Count and log the skip of step ``step``; tell the fp16 loss scaler; stop after
        ``max_consecutive`` in a row (``kept`` says which checkpoint survives)."""
        self.skipped += 1
        self.consecutive += 1
        if self.buffers:
            torch._foreach_copy_(self.buffers, self._saved)
        if reason == "fp16 overflow":
            self.precision.step(optimizer)  # the scaler skips the step and halves its scale
        elif not reason.startswith("non-finite loss"):  # gradients unscaled: close the iteration
            self.precision.skip(optimizer)
        _log.warning("step %d: update skipped (%s); %d skipped in all, %d in a row",
                     step, reason, self.skipped, self.consecutive)
        limit = None if self.skip is None else self.skip.max_consecutive
        if limit is not None and self.consecutive >= limit:
            raise NonFiniteLossError(
                f"step {step}: {self.consecutive} updates skipped in a row (train.skip_update."
                f"max_consecutive={limit}; the last: {reason}); {kept}"
            )

    def state(self) -> dict[str, int]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state(self, state: dict[str, int]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self.consecutive = int(state.get("consecutive", 0))


__all__ = ["UpdateGuard", "low_precision_weights", "norms"]  # the copies a trainer uses
