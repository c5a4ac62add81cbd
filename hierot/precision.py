r"""Numeric precision of a training step: ``train.precision`` = ``fp32``, ``bf16`` or ``fp16``.

``bf16`` and ``fp16`` run the networks under :func:`torch.autocast` (Micikevicius et al., 2018,
*Mixed precision training*): matrix products and convolutions in the lower precision, the
parameters, their gradients and the optimiser state in float32. The objective computes its costs
and its divergence in float32 (:func:`float32_region`, :func:`to_float32`): the MMD's kernel sums
and Sinkhorn's log-sum-exps lose too much in an 8-bit mantissa (bfloat16 carries 3 significant
digits), and the reconstruction sums over 784 pixels would too.

``fp16`` has a narrow exponent range, so its gradients underflow without loss scaling: the loss
is multiplied by a scale before the backward pass and the gradients divided by it before the
update (:class:`torch.amp.GradScaler`, whose scale is halved on an overflow, that step skipped,
and doubled after 2,000 clean steps). It is CUDA-only here. ``bf16`` has float32's exponent range
and needs no scaling; it runs on the CPU and on GPUs that support it (Ampere and later).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from hierot.errors import HierotError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_LOWER = (torch.float16, torch.bfloat16)


class Precision:
    """Autocast, loss scaling and their checkpoint state for one precision on one device.

    Parameters
    ----------
    name:
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (the spec's ``train.precision``).
    device:
        The device training runs on; ``fp16`` needs CUDA, ``bf16`` a CPU or a GPU with bfloat16.
    """

    def __init__(self, name: str, device: torch.device):
        if name not in DTYPES:
            raise HierotError(f"train.precision: {name!r} is not one of {', '.join(DTYPES)}")
        self.name, self.device, self.dtype = name, torch.device(device), DTYPES[name]
        kind = self.device.type
        if name == "fp16" and kind != "cuda":
            raise HierotError(
                f"train.precision: fp16 needs CUDA (float16 autocast with gradient scaling); the "
                f"device is {self.device}: use bf16 or fp32 there"
            )
        if name == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise HierotError(
                f"train.precision: bf16 is not supported by "
                f"{torch.cuda.get_device_name(self.device)};"
                f" use fp16 (with gradient scaling) or fp32"
            )
        if name != "fp32" and kind not in ("cpu", "cuda"):
            raise HierotError(f"train.precision: {name} is supported on cpu and cuda, not {kind}")
        self.scaler = torch.amp.GradScaler(kind) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward pass runs in (nothing to do for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        """``loss.backward()``, on the scaled loss with fp16."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale in place (before clipping them; fp16 only)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser's step; with fp16 skipped when a gradient overflowed, and the scale
        updated."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def skip(self, optimizer: torch.optim.Optimizer) -> None:
        """Close the iteration of an update skipped after :meth:`unscale` (fp16 only): the loss
        scale and its growth count are kept as they were."""
        if self.scaler is not None:
            self.scaler.update(self.scaler.get_scale())

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds (the loss scale and its growth tracker, with fp16)."""
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


@contextlib.contextmanager
def float32_region(device_type: str) -> Iterator[None]:
    """Autocast switched off inside the block (where it was on): costs and divergences in fp32."""
    if torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            yield
    else:
        yield


def to_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 when it is float16 or bfloat16 (float64 and float32 are kept)."""
    return tensor.float() if tensor.dtype in _LOWER else tensor


__all__ = ["DTYPES", "Precision", "float32_region", "to_float32"]
