"""Where a run's modules go: the spec's ``device`` resolved on this machine."""

from __future__ import annotations

import torch

from hierot.errors import HierotError


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; an unavailable device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HierotError(f"device: {name!r} asked for, but CUDA is not available here "
                          f"(use cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise HierotError(f"device: {name!r} asked for, but MPS is not available here "
                          f"(use cpu or auto)")
    return device
