"""``train.compile: true``: every layer network compiled with :func:`torch.compile`.

Each encoder and decoder is compiled in place (:meth:`torch.nn.Module.compile`), so parameter
names, checkpoints and the objective are unchanged; the costs and the divergence stay eager (they
are small, and the MMD's hand-written backward is already one buffer per kernel). Compilation
happens during the first steps (and again for a new batch shape: the last, smaller batch of an
epoch-based run, or evaluation), so its time shows in the first logging interval. Networks of
one class share their ``forward``, which dynamo compiles once per network and shape: its
``recompile_limit`` is raised to make room for them all. On the CPU,
TorchInductor generates C++ and needs a C++ compiler; where none is found training stops before
it starts, with the error naming ``train.compile``. Measured costs are in ``docs/precision.md``.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import torch

from hierot.errors import HierotError

if TYPE_CHECKING:
    from hierot.model import Hierarchy


def cpp_compiler() -> str | None:
    """The C++ compiler TorchInductor would call on the CPU (``None`` when absent)."""
    try:
        from torch._inductor import config

        name = config.cpp.cxx[0] if isinstance(config.cpp.cxx, tuple) else config.cpp.cxx
    except Exception:  # noqa: BLE001 - inductor's config moved: fall back to the usual names
        name = None
    for candidate in (name, "g++", "clang++", "c++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def compile_networks(model: Hierarchy, device: torch.device) -> None:
    """Compile every encoder and decoder of ``model`` in place (TorchInductor)."""
    if device.type == "cpu" and cpp_compiler() is None:
        raise HierotError(
            "train.compile: torch.compile on the CPU needs a C++ compiler (g++ or clang++) and "
            "none is on PATH; install one (apt-get install g++) or set train.compile=false"
        )
    networks = [*model.encoders, *model.decoders]
    # networks of one class share their forward's code object, whose compiled versions dynamo
    # caches up to recompile_limit (8): room for one per network and its batch shapes
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, 4 * len(networks))
    for network in networks:
        network.compile()


__all__ = ["compile_networks", "cpp_compiler"]
