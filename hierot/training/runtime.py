"""Where training runs: the device, and this process's place among data-parallel workers.

Device placement, sharding of the batch and the gather of the divergence's samples are decided
here and nowhere else, so the trainer works unchanged on one CPU, one GPU or many processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hierot._utils import identity
from hierot.errors import HierotError
from hierot.run import resolve_device


@dataclass
class Runtime:
    """This process's device and rank among ``world_size`` data-parallel workers."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    gather: Callable[[Tensor], Tensor] = field(default=identity)
    """Collects the top latent samples of every rank for the divergence (identity alone)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch_indices: Tensor) -> Tensor:
        """This rank's contiguous share of a global batch."""
        if self.world_size == 1:
            return batch_indices
        return batch_indices.chunk(self.world_size)[self.rank]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as this runtime trains it (unchanged on one process)."""
        return model

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """One forward of the objective (nothing to arrange on one process; the data-parallel
        runtime switches between each rank's noise and the shared one)."""
        yield

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for on one process)."""

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (a picklable object), on every rank."""
        return value

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (logged metrics: the global batch's means)."""
        return values

    def state(self) -> dict[str, Any]:
        """What a checkpoint records about the runtime."""
        return {"world_size": self.world_size}

    def load_state(self, state: dict[str, Any]) -> None:
        """Check a checkpoint's runtime record (absent in old checkpoints: one process)."""
        saved = int(state.get("world_size", 1))
        if saved != self.world_size:
            raise HierotError(
                f"the checkpoint was written by {saved} data-parallel process(es) and is "
                f"resumed by {self.world_size}: resume with the same world size "
                f"(torchrun --nnodes x --nproc_per_node = {saved})"
            )


def single_process(device: str = "auto") -> Runtime:
    """One process on ``device`` (data-parallel runtimes: :mod:`hierot.training.distributed`)."""
    return Runtime(resolve_device(device))
