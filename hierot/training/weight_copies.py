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
* the gradients reach float32 buffers allocated once, which become the masters' ``.grad``:
  for ``nn.Linear`` through its own autograd function (:class:`_LinearOnCopies`), whose
  backward pass writes the bfloat16 weight and bias gradients into buffers allocated once
  (``torch.mm(..., out=buffer)``) and widens them into the float32 ones, summing a weight's
  uses there; for the other layers autograd leaves them on the copies' ``.grad``, copied over in one
  fused pass. The optimiser, clipping, EMA, checkpoints and held-out evaluation see float32
  masters only;
* the copies are refreshed (in place, one fused ``_foreach_copy_``) before the forward pass
  that follows a taken update (:meth:`LowPrecisionWeights.invalidate`, called by the update
  guard), or any other change of a master (a checkpoint loaded, the EMA's swap, a user's edit:
  torch's version counter of the master says so; the fused optimisers' in-place update does not
  move it, hence the explicit call). A skipped update leaves masters and copies untouched.

The copies hold exactly the values autocast's casts would, and the gradients reach the masters
through the same roundings (the bfloat16 product, the exact widening to float32, float32 sums),
so a step of a network of ``nn.Linear`` layers is the autocast step to the bit, without its
per-step allocations of weight-sized buffers (tested; measured in docs/precision.md). Other
layers (convolutions) get their gradients through autograd's accumulation on the copies, summed
in bfloat16 when a weight is used twice. Under ``train.compile`` every layer takes that path
(dynamo traces ``functional_call`` without the custom function).

Used by the single-process trainer for ``bf16``; under DDP (whose gradient hooks sit on the
masters) and for ``fp16`` (whose loss scaler unscales the masters' gradients) autocast's casts
are kept. An ``nn.Linear`` called outside autocast (in a
:func:`hierot.precision.float32_region`) still computes in bfloat16 under ``bf16``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    own_linear:
        Whether ``nn.Linear`` layers use :class:`_LinearOnCopies` (``False`` under
        ``torch.compile``).
    widen:
        Whether the linear layers' bfloat16 gradients are widened into the float32 buffers in
        the backward pass (``False`` under ``train.fused_update``, whose kernel reads them as
        they are: :meth:`take_gradients`).

    Calling the object runs ``module`` on the copies (refreshed first if a master changed);
    :meth:`gradients_to_masters` moves the copies' gradients to the masters after the backward
    pass.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype, own_linear: bool = True,
                 widen: bool = True):
        self.module, self.dtype, self.widen = module, dtype, widen
        named = matrix_parameters(module)
        self.names = [n for n, _ in named]
        self.masters = [p for _, p in named]
        with torch.no_grad():
            self.copies = [p.detach().to(dtype).requires_grad_(p.requires_grad)
                           for p in self.masters]
        self.grads = [torch.empty_like(p) for p in self.masters]  # float32, allocated once
        index = {id(p): i for i, p in enumerate(self.masters)}
        self.linears = [(layer, index[id(layer.weight)],
                         None if layer.bias is None else index[id(layer.bias)])
                        for layer in module.modules() if type(layer) is nn.Linear
                        and id(layer.weight) in index] if own_linear else []
        self.low = {i: torch.empty_like(self.copies[i]) for _, w, b in self.linears
                    for i in (w, b) if i is not None}  # their bf16 gradients, allocated once
        # the copies swapped in by functional_call: those the linear layers do not take
        self.swapped = {n: c for i, (n, c) in enumerate(zip(self.names, self.copies))
                        if i not in self.low}
        self.fresh: set[int] = set()  # buffers written in this backward pass
        self.wide: set[int] = set()  # without widen: the gradients summed in float32
        device = self.masters[0].device if self.masters else None
        self._anchor = torch.zeros((), device=device, requires_grad=True)  # a graph input
        self._versions = [p._version for p in self.masters]
        self._updated = False
        self.refreshes = 0
        """How many times the copies were refreshed (once per taken update)."""

    def __call__(self, *args: Any) -> Any:
        """``module(*args)`` with the copies in place of the masters."""
        self.refresh()
        for layer, w, b in self.linears:
            # an instance attribute shadows nn.Linear.forward for the call
            layer.forward = partial(self._linear, w, b)  # type: ignore[method-assign]
        try:
            if not self.swapped:  # every copy taken by a linear layer: nothing to swap in
                return self.module(*args)
            return torch.func.functional_call(self.module, self.swapped, args, strict=False)
        finally:
            for layer, _, _ in self.linears:
                del layer.forward

    def _linear(self, w: int, b: int | None, x: Tensor) -> Tensor:
        return _LinearOnCopies.apply(x, self._anchor, self, w, b)

    def buffer(self, i: int) -> Tensor | None:
        """Where the backward pass writes the bf16 gradient of copy ``i``: its buffer, unless
        it holds this pass's first contribution, kept there unwidened (``widen=False``)."""
        return None if not self.widen and i in self.fresh else self.low[i]

    def accumulate(self, i: int, low: Tensor) -> None:
        """Add the bf16 gradient ``low`` of copy ``i`` to its float32 buffer (the first
        contribution of a backward pass overwrites it). Without ``widen`` the first stays in
        its bf16 buffer, and only a second one is summed in float32."""
        if not self.widen:
            if i in self.fresh and i not in self.wide:
                self.grads[i].copy_(self.low[i])
                self.wide.add(i)
            if i in self.wide:
                self.grads[i].add_(low)
            self.fresh.add(i)
        elif i in self.fresh:
            self.grads[i].add_(low)
        else:
            self.grads[i].copy_(low)
            self.fresh.add(i)

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
        if moved:
            torch._foreach_copy_([g for _, _, g, _ in moved], [low for _, low, _, _ in moved])
        for copy, _, grad, master in moved:
            master.grad = grad if master.grad is None else master.grad.add_(grad)
            copy.grad = None
        for i in self.fresh:  # written by the linear layers' backward
            master = self.masters[i]
            grad = self.grads[i] if self.widen or i in self.wide else self.grads[i].copy_(
                self.low[i])
            master.grad = grad if master.grad is None else master.grad.add_(grad)
        self.fresh.clear()
        self.wide.clear()

    def take_gradients(self) -> dict[int, Tensor]:
        """The gradient of each master that has one, by index, as the backward pass left it:
        bfloat16 (a linear layer's buffer, used once; a copy's ``.grad``) or float32 (summed
        over several uses, or with the master's own ``.grad`` where it was also used directly,
        which then holds the sum). Clears them for the next backward pass (``widen=False``)."""
        taken = {i: self.grads[i] if i in self.wide else self.low[i] for i in self.fresh}
        for i, copy in enumerate(self.copies):
            if copy.grad is not None:
                taken[i] = copy.grad if i not in taken else taken[i].add_(copy.grad)
                copy.grad = None
        for i, grad in list(taken.items()):
            master = self.masters[i]
            if master.grad is not None:  # used outside the matrix layers too: sum in float32
                taken[i] = master.grad.add_(grad)
        self.fresh.clear()
        self.wide.clear()
        return taken


class _LinearOnCopies(torch.autograd.Function):
    """``F.linear`` on copies ``w`` and ``b`` of :class:`LowPrecisionWeights` ``owner``, whose
    backward pass writes the weight's and bias's gradients into buffers allocated once
    (``torch.mm(out=...)``, then widened into the float32 gradient) rather than fresh ones."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, anchor: Tensor, owner: LowPrecisionWeights, w: int,
                b: int | None) -> Tensor:
        weight = owner.copies[w]
        x = x.to(weight.dtype)  # autocast's cast of the input
        ctx.save_for_backward(x)
        ctx.owner, ctx.w, ctx.b = owner, w, b
        return F.linear(x, weight, None if b is None else owner.copies[b])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        owner, w, b = ctx.owner, ctx.w, ctx.b
        weight = owner.copies[w]
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        g2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        if weight.requires_grad:
            owner.accumulate(w, torch.mm(g2.t(), x2, out=owner.buffer(w)))
        if b is not None and owner.copies[b].requires_grad:
            owner.accumulate(b, torch.sum(g2, 0, out=owner.buffer(b)))
        return grad_x, None, None, None, None


def low_precision_weights(precision: Any, trained: nn.Module, objective: nn.Module,
                          train: Any = None) -> LowPrecisionWeights | None:
    """The copies a trainer uses: for ``bf16`` on one process (``trained`` is the objective
    itself, not a DDP wrapper); ``None`` otherwise (autocast casts as it does). ``train``: the
    spec's ``train`` section; with ``compile`` the linear layers take no custom function, with
    ``fused_update`` their gradients stay bfloat16 (``widen=False``)."""
    if precision.name != "bf16" or trained is not objective:
        return None
    compiled = bool(getattr(train, "compile", False))
    return LowPrecisionWeights(objective, precision.dtype, own_linear=not compiled,
                               widen=not getattr(train, "fused_update", False))


__all__ = ["MATRIX_LAYERS", "LowPrecisionWeights", "low_precision_weights", "matrix_parameters"]
