r"""``train.fused_update``: Adam's update and the bf16 copies' refresh in one pass over memory.

Under ``train.precision: bf16`` (:mod:`hierot.training.weight_copies`) a step makes four passes
over every weight besides the forward and backward passes: the widening of the bfloat16
gradients into float32, their norm, torch's fused Adam and the refresh of the bfloat16 copies
from the float32 masters; all four are bound by memory bandwidth (docs/precision.md). With
``fused_update`` the gradients stay bfloat16 and two passes remain, both in one C kernel
(:mod:`hierot.training._fused_kernel`):

1. the sum of squares of each gradient, read in bfloat16 (half the bytes): the finite check, the
   logged ``grad_norm``, ``train.skip_update`` and the clip factor
   :math:`c = \min(1, C / (\|g\| + 10^{-6}))` of ``optimizer.clip_grad_norm`` (as
   :func:`torch.nn.utils.clip_grad_norm_`);
2. Adam (Kingma & Ba, 2015, Algorithm 1) or AdamW (Loshchilov & Hutter, 2019, Algorithm 2) on
   the float32 masters from :math:`c\,g`, writing masters, moments and the bfloat16 copies.

:class:`FusedBf16Adam` is a :class:`torch.optim.Adam` (AdamW: ``decoupled_weight_decay``) whose
``step`` runs that kernel: its state is torch's, per parameter ``step``, ``exp_avg`` and
``exp_avg_sq``, so checkpoints load into torch's Adam and back, and a resume is exact. The
update agrees with torch's to float32 rounding, not to the bit (its
:math:`\sqrt{v}/\sqrt{1-\beta_2^t}` is a product by the reciprocal), so a bf16 run with the
fused update is not the run without it. Parameters outside the matrix layers (BatchNorm's) are
updated by the same kernel from their float32 gradients. CPU, one process, Adam and AdamW
without ``amsgrad`` only (checked when the spec is validated and when the trainer is built).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import torch
from torch import Tensor

from hierot.errors import HierotError
from hierot.training import _fused_kernel
from hierot.training.weight_copies import LowPrecisionWeights


class FusedBf16Adam(torch.optim.Adam):
    """Adam whose step reads bfloat16 gradients and writes the bfloat16 copies (module
    docstring).

    Parameters
    ----------
    params:
        The parameters (or parameter groups): float32, dense (any memory order), on the CPU.
    copies:
        The bf16 copies of the matrix layers' weights, built with ``widen=False``.
    **options:
        :class:`torch.optim.Adam`'s options (``decoupled_weight_decay=True``: AdamW); the
        kernel options (``fused``, ``foreach``) are kept in the state for torch's Adam only.
    """

    def __init__(self, params: Any, copies: LowPrecisionWeights, **options: Any):
        super().__init__(params, **options)
        for flag in ("amsgrad", "maximize", "capturable", "differentiable"):
            if self.defaults.get(flag):
                raise HierotError(f"train.fused_update: covers Adam and AdamW without {flag}")
        bad = [p for p in self._params() if p.device.type != "cpu"
               or p.dtype != torch.float32 or not _dense(p)]
        if bad:
            raise HierotError("train.fused_update: runs on dense float32 parameters on the CPU; "
                              f"{len(bad)} are not (device {bad[0].device}, {bad[0].dtype})")
        if not all(_same_layout(c, p) for c, p in zip(copies.copies, copies.masters)):
            raise HierotError("train.fused_update: the weight copies must have their masters' "
                              "memory layout")
        if copies.widen:
            raise HierotError("train.fused_update: the weight copies must keep their bfloat16 "
                              "gradients (LowPrecisionWeights(widen=False))")
        self.copies = copies
        self._lib = _fused_kernel.load()
        self._copy_index = {id(p): i for i, p in enumerate(copies.masters)}
        self._gradients: list[Tensor | None] | None = None
        self._scale = 1.0
        self._plan: _Plan | None = None

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    # -- the gradients -------------------------------------------------------------------------
    def gradients(self) -> list[Tensor | None]:
        """Each parameter's gradient for this step, in the groups' order (``None``: none): the
        bfloat16 one the backward pass left for a copied weight, else its ``.grad``."""
        if self._gradients is None:
            low = self.copies.take_gradients()
            grads = [low.get(self._copy_index.get(id(p), -1), p.grad) for p in self._params()]
            self._gradients = [g if g is None or g.is_contiguous() or _dense(g)
                               else g.contiguous() for g in grads]  # the kernels read memory
        return self._gradients

    def gradient_norms(self, device: torch.device) -> Tensor:
        """The L2 norm of each gradient (float32, on ``device``): one pass of the kernel."""
        grads = [g for g in self.gradients() if g is not None]
        out = (ctypes.c_double * len(grads))()
        if grads and self._lib.sum_squares(
                len(grads), _int64s(g.numel() for g in grads), _pointers(grads),
                _ints(g.dtype == torch.bfloat16 for g in grads), out, torch.get_num_threads()):
            raise MemoryError("train.fused_update: no memory for the gradient norm's blocks")
        return torch.tensor(list(out), dtype=torch.float64).sqrt().to(device, torch.float32)

    def widen_gradients(self) -> None:
        """Give every copied weight its gradient as a float32 ``.grad`` (to name a non-finite
        one); the step then reads those."""
        gradients = self.gradients()
        for k, (p, g) in enumerate(zip(self._params(), gradients)):
            if g is not None and g.dtype != torch.float32:
                wide = self.copies.grads[self._copy_index[id(p)]]
                p.grad = gradients[k] = wide.copy_(g)

    def scale_gradients(self, factor: float) -> None:
        """Multiply this step's gradients by ``factor`` in the update (clipping)."""
        self._scale = float(factor)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self._gradients, self._scale = None, 1.0

    # -- the update ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One Adam step of every parameter with a gradient, writing the bfloat16 copies."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rows = self._with_gradients()
        params = [p for _, p, _ in rows]
        plan = self._plan
        if plan is None or not plan.holds(params, self.state):
            plan = self._plan = _Plan(self._counted_rows())
        if plan.n:
            grads = [g if g.stride() == stride or _same_layout(g, p)
                     else torch.empty_like(p, dtype=g.dtype).copy_(g)  # autograd's other layout
                     for (_, p, g), stride in zip(rows, plan.strides)]
            if plan.counter is not None:  # as torch's Adam counts, in one operation
                counts = plan.counter.add_(1.0).tolist()
            else:
                torch._foreach_add_(plan.steps, 1.0)
                counts = torch.stack(plan.steps).tolist()
            cached: dict[tuple[int, float], list[float]] = {}  # per group and step count
            hyper = []
            for group, step in zip(plan.groups, counts):
                if (id(group), step) not in cached:
                    cached[id(group), step] = _hyper(group, step)
                hyper += cached[id(group), step]
            self._lib.adam_update(
                plan.n, plan.numel, plan.params, _pointers(grads),
                _ints(g.dtype == torch.bfloat16 for g in grads), plan.exp_avg, plan.exp_avg_sq,
                plan.copies, (ctypes.c_double * len(hyper))(*hyper),
                ctypes.c_float(self._scale), torch.get_num_threads())
        self._gradients, self._scale = None, 1.0
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's, then the kernel's arguments rebuilt at the next step (new moments)."""
        super().load_state_dict(state_dict)
        self._plan = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._plan = None

    def _rows(self) -> list[tuple]:
        """Per parameter with a gradient: its group, the parameter, moments (laid out in memory
        as the parameter), copy (``None``: none) and step count."""
        rows = []
        for group, p, _ in self._with_gradients():
            state = self.state[p]
            if not state:  # torch's Adam's layout: its checkpoints load either way
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            for key in ("exp_avg", "exp_avg_sq"):  # e.g. loaded in another memory format
                if not _same_layout(state[key], p):
                    state[key] = torch.empty_like(p).copy_(state[key])
            copy = self._copy_index.get(id(p))
            rows.append((group, p, state["exp_avg"], state["exp_avg_sq"],
                         None if copy is None else self.copies.copies[copy], state["step"]))
        return rows

    def _counted_rows(self) -> list[tuple]:
        """:meth:`_rows`, their ``step`` tensors made the elements of one tensor (each state's
        ``step`` a 0-d view of it, as torch's Adam keeps it: a float32 tensor), so one
        operation counts them all."""
        rows = self._rows()
        if rows and _counter(rows) is None:
            flat = torch.stack([row[-1] for row in rows])
            rows = [(*row[:-1], flat[k]) for k, row in enumerate(rows)]
            for row in rows:
                self.state[row[1]]["step"] = row[-1]
        return rows

    def _with_gradients(self) -> list[tuple[dict, Tensor, Tensor]]:
        grads = iter(self.gradients())
        return [(group, p, g) for group in self.param_groups for p in group["params"]
                if (g := next(grads)) is not None]


class _Plan:
    """The kernel's arguments that stay from step to step while the same parameters have
    gradients: the parameters', moments' and copies' addresses, sizes, groups and step tensors.

    Built from :meth:`FusedBf16Adam._counted_rows`, it keeps every tensor it points into
    alive; :meth:`holds` says whether it still describes a step's parameters (the same ones,
    at the same addresses, with the same state tensors). The optimiser also drops it when its
    state is loaded or a group added. The gradients' addresses are taken at every step
    (autograd allocates BatchNorm's and the convolutions' anew).
    """

    def __init__(self, rows: list[tuple]):
        groups, p_, m_, v_, c_, steps = zip(*rows) if rows else ((),) * 6
        self.n, self.kept = len(rows), (p_, m_, v_, c_)  # what the pointers point into
        self.members, self.addresses = list(p_), tuple(p.data_ptr() for p in p_)
        self.strides = [p.stride() for p in p_]
        self.groups, self.steps = list(groups), list(steps)
        self.counter = _counter(rows) if rows else None
        self.numel, self.params = _int64s(p.numel() for p in p_), _pointers(p_)
        self.exp_avg, self.exp_avg_sq, self.copies = _pointers(m_), _pointers(v_), _pointers(c_)
        self.moments, self.squares = m_, v_

    def holds(self, params: list[Tensor], state: dict) -> bool:
        """Whether these arguments are those of a step of ``params`` (with gradients) with the
        optimiser's ``state``: the same parameters at the same addresses, each with the same
        moment and step tensors (any replaced, as torch's Adam allows, rebuilds the plan)."""
        if len(params) != self.n or not all(a is b for a, b in zip(params, self.members)):
            return False
        if tuple(p.data_ptr() for p in params) != self.addresses:
            return False
        for p, m, v, t in zip(params, self.moments, self.squares, self.steps):
            s = state.get(p) or {}
            if s.get("exp_avg") is not m or s.get("exp_avg_sq") is not v or s.get("step") is not t:
                return False
        return True


def _counter(rows: list[tuple]) -> Tensor | None:
    """The one tensor whose elements are the rows' ``step`` tensors in order, if there is
    one (:meth:`FusedBf16Adam._counted_rows`)."""
    steps = [row[-1] for row in rows]
    base = steps[0]._base
    if base is None or base.shape != (len(steps),) or not base.is_contiguous():
        return None
    start = base.storage_offset()
    return base if all(s._base is base and s.storage_offset() == start + k
                       for k, s in enumerate(steps)) else None


def _hyper(group: dict, step: float) -> list[float]:
    """One tensor's row of the kernel's ``hyper``: its group's options at step ``step``."""
    lr, (beta1, beta2) = float(group["lr"]), group["betas"]
    decay, decoupled = float(group["weight_decay"]), bool(group.get("decoupled_weight_decay"))
    return [lr / (1 - beta1**step), 1 - beta1, beta2, 1 - beta2, float(group["eps"]),
            1 / math.sqrt(1 - beta2**step), 0.0 if decoupled else decay,
            1 - lr * decay if decoupled else 1.0]


def _dense(t: Tensor) -> bool:
    """Whether ``t``'s values fill its memory without gaps or overlaps, in any order of the
    dimensions (contiguous, channels-last, ...): an elementwise kernel may then run over the
    memory itself, given tensors of the same layout."""
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape) if n > 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(a: Tensor, b: Tensor) -> bool:
    """Whether element ``i`` of ``a``'s memory is element ``i`` of ``b``'s (``b`` dense)."""
    return a.shape == b.shape and (a.stride() == b.stride() or all(
        x == y for x, y, n in zip(a.stride(), b.stride(), a.shape) if n > 1))


def _pointers(tensors: Any) -> ctypes.Array:
    """The data pointers of ``tensors`` (``None``: a null pointer): dense tensors laid out as
    their parameter, which :meth:`FusedBf16Adam.step` ensures."""
    return (ctypes.c_void_p * len(tensors))(*(None if t is None else t.data_ptr()
                                              for t in tensors))


def _int64s(values: Any) -> ctypes.Array:
    values = list(values)
    return (ctypes.c_int64 * len(values))(*values)


def _ints(values: Any) -> ctypes.Array:
    values = list(values)
    return (ctypes.c_int * len(values))(*values)


def fused_bf16_adam(optimizer: torch.optim.Optimizer,
                    copies: LowPrecisionWeights | None) -> FusedBf16Adam:
    """``optimizer`` (torch's Adam or AdamW, as the ``optimizer`` registry built it) with the
    fused update; a :class:`HierotError` naming ``train.fused_update`` where it cannot run."""
    if copies is None:
        raise HierotError("train.fused_update: needs the bf16 weight copies of one process "
                          "(train.precision bf16, not under torchrun/DDP)")
    if not isinstance(optimizer, torch.optim.Adam):
        raise HierotError(f"train.fused_update: covers optimizer adam and adamw, not "
                          f"{type(optimizer).__name__}")
    return FusedBf16Adam(optimizer.param_groups, copies, **optimizer.defaults)


__all__ = ["FusedBf16Adam", "fused_bf16_adam"]
