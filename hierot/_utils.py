"""Small helpers with no home of their own, shared across layers (imports torch only).

``identity`` is the gather of a single process (the runtime's default, the builder's default);
``seeded``, ``seeded_on`` and ``one_thread`` scope torch's global random state and thread count
to a block (evaluation, the trainer's side passes and the FCD classifier use them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor


def identity(samples: Tensor) -> Tensor:
    """``samples`` unchanged: the gather of the divergence's samples on one process."""
    return samples


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global RNGs seeded, restoring their state afterwards."""
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def seeded_on(device: torch.device, seed: int) -> Iterator[None]:
    """:func:`seeded`, saving and restoring only ``device``'s generator among the GPUs: a
    data-parallel process must not create a context on the other processes' devices."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def one_thread(device) -> Iterator[None]:
    """Run the block with one intra-op torch thread when ``device`` is the CPU."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
