r"""bf16 weights kept between steps: the forward pass runs on copies cast once per update.

Under ``train.precision: bf16`` autocast casts each float32 weight of a matrix product to
bfloat16 in the forward pass, and its gradient back to float32 in the backward pass, into a fresh
buffer each time (Micikevicius et al., 2018, *Mixed precision training*, Sec. 3.1: float32
"master" weights, half-precision copies for the arithmetic). On a CPU most of those casts' time
is the allocation of the buffers (page faults), not the conversion. :class:`LowPrecisionWeights`
keeps the copies instead, NVIDIA apex's "O2" with the master weights in the optimiser:

* the parameters of the matrix-product layers (``nn.Linear``, ``nn.Conv*``, ``nn.ConvTranspose*``,
  weights and biases: those autocast casts) get persistent bfloat16 copies
  :math:`\hat\theta = \mathrm{bf16}(\theta)`, leaves of the autograd graph;
* the forward pass runs on them (:func:`torch.func.functional_call`, under autocast as before:
  the activations are cast as before, the copies are already bfloat16 and are used as they are;
  BatchNorm's parameters, the costs and the divergence stay float32);
* after the backward pass their gradients :math:`\partial L / \partial\hat\theta` (bfloat16) are
  copied into float32 gradient buffers allocated once, which become the masters' ``.grad``;
  the optimiser, clipping, EMA, checkpoints and held-out evaluation see float32 masters only;
* the copies are refreshed (in place, one fused ``_foreach_copy_``) before the forward pass
  that follows a taken update (:meth:`LowPrecisionWeights.invalidate`, called by the update
  guard), or any other change of a master (a checkpoint loaded, the EMA's swap, a user's edit:
  torch's version counter of the master says so; the fused optimisers' in-place update does not
  move it, hence the explicit call). A skipped update leaves masters and copies untouched.

The copies hold exactly the values autocast's casts would, and the gradients reach the masters
through the same two roundings (the bfloat16 product, then the exact widening to float32), so a
step is the autocast step to the bit, at a lower cost (tested, measured in docs/precision.md).

Used by the single-process trainer for ``bf16``; under DDP (whose gradient hooks sit on the
masters) and for ``fp16`` (whose loss scaler unscales the masters' gradients) autocast's casts
are kept. A network whose forward pass uses one of these layers' parameters outside autocast
(in a :func:`hierot.precision.float32_region`) is not supported under ``bf16``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

MATRIX_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
    nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)
"""The layers whose parameters get copies (their products run in bfloat16 under autocast)."""


def matrix_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The floating-point parameters of ``module``'s :data:`MATRIX_LAYERS`, with their names
    relative to ``module`` (each parameter once)."""
    found, seen = [], set()
    for prefix, layer in module.named_modules():
        if not isinstance(layer, MATRIX_LAYERS):
            continue
        for name, p in layer.named_parameters(recurse=False):
            if p.is_floating_point() and id(p) not in seen:
                seen.add(id(p))
                found.append((f"{prefix}.{name}" if prefix else name, p))
    return found


class LowPrecisionWeights:
    """Persistent ``dtype`` copies of ``module``'s matrix-layer weights (module docstring).

    Parameters
    ----------
    module:
        The module whose forward pass computes the loss (the objective, holding the model).
    dtype:
        The copies' dtype (``torch.bfloat16``).

    Calling the object runs ``module`` on the copies (refreshed first if a master changed);
    :meth:`gradients_to_masters` moves the copies' gradients to the masters after the backward
    pass.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        self.module, self.dtype = module, dtype
        named = matrix_parameters(module)
        self.names = [n for n, _ in named]
        self.masters = [p for _, p in named]
        with torch.no_grad():
            self.copies = [p.detach().to(dtype).requires_grad_(p.requires_grad)
                           for p in self.masters]
        self.grads = [torch.empty_like(p) for p in self.masters]  # float32, allocated once
        self._versions = [p._version for p in self.masters]
        self._updated = False
        self.refreshes = 0
        """How many times the copies were refreshed (once per taken update)."""

    def __call__(self, *args: Any) -> Any:
        """``module(*args)`` with the copies in place of the masters."""
        self.refresh()
        params = dict(zip(self.names, self.copies))
        return torch.func.functional_call(self.module, params, args, strict=False)

    def invalidate(self) -> None:
        """The optimiser updated the masters: refresh the copies before the next forward."""
        self._updated = True

    def stale(self) -> bool:
        """Whether a master changed since the copies were last refreshed."""
        return self._updated or any(p._version != v for p, v in zip(self.masters, self._versions))

    def refresh(self) -> None:
        """Cast the masters into the copies, in place, if any master changed."""
        if not self.stale():
            return
        with torch.no_grad():
            torch._foreach_copy_(self.copies, [p.detach() for p in self.masters])
        self._versions = [p._version for p in self.masters]
        self._updated = False
        self.refreshes += 1

    def gradients_to_masters(self) -> None:
        """Copy the copies' gradients (left by the backward pass) into the masters' float32
        gradient buffers, in one fused pass, and clear them; a master that already holds a
        gradient (used directly as well) gets the sum."""
        moved = [(c, c.grad, g, p) for c, g, p in zip(self.copies, self.grads, self.masters)
                 if c.grad is not None]
        if not moved:
            return
        torch._foreach_copy_([g for _, _, g, _ in moved], [low for _, low, _, _ in moved])
        for copy, _, grad, master in moved:
            if master.grad is None:
                master.grad = grad
            else:
                master.grad.add_(grad)
            copy.grad = None


def low_precision_weights(precision: Any, trained: nn.Module,
                          objective: nn.Module) -> LowPrecisionWeights | None:
    """The copies a trainer uses: for ``bf16`` on one process (``trained`` is the objective
    itself, not a DDP wrapper); ``None`` otherwise (autocast casts as it does)."""
    if precision.name != "bf16" or trained is not objective:
        return None
    return LowPrecisionWeights(objective, precision.dtype)


__all__ = ["MATRIX_LAYERS", "LowPrecisionWeights", "low_precision_weights", "matrix_parameters"]
