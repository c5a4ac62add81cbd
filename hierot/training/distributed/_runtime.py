"""The runtime of one of several data-parallel processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from hierot.errors import HierotError
from hierot.spec.schema import DistributedSpec
from hierot.training.distributed._batchnorm import convert_sync_batchnorm
from hierot.training.distributed._ddp import DataParallelObjective
from hierot.training.distributed._gather import gather_rows
from hierot.training.distributed._noise import NoiseStreams
from hierot.training.runtime import Runtime


class DistributedRuntime(Runtime):
    """One of ``world_size`` data-parallel processes (see :func:`init`)."""

    def __init__(self, device: torch.device, rank: int, world_size: int, local_rank: int,
                 options: DistributedSpec):
        super().__init__(device, rank, world_size, gather=self._gather)
        self.local_rank = local_rank
        self.options = options
        self._noise = NoiseStreams(device, rank)
        self._in_step = False

    def shard(self, batch_indices: Tensor) -> Tensor:
        n = len(batch_indices)
        if n % self.world_size:
            raise HierotError(
                f"train.batch_size: {n} cannot be split evenly over {self.world_size} "
                f"data-parallel processes; the global batch must be a multiple of the world size"
            )
        return batch_indices.chunk(self.world_size)[self.rank]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The objective under DDP, its BatchNorm layers synchronised if the spec asks."""
        if self.options.sync_batchnorm:
            model = convert_sync_batchnorm(model, self.device)
        return DataParallelObjective(model, self, sync_buffers=not self.options.sync_batchnorm)

    def barrier(self) -> None:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        box = [value]
        device = self.device if self.device.type == "cuda" else None
        dist.broadcast_object_list(box, src=0, device=device)
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        names = list(values)  # the same names in the same order on every rank
        summed = torch.tensor([values[n] for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return dict(zip(names, (summed / self.world_size).tolist()))

    def state(self) -> dict[str, Any]:
        state = super().state()
        if self.device.type == "cuda":  # rank 0's device generator is every rank's shared stream
            state["rng_device"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        if self.device.type == "cuda" and state.get("rng_device") is not None:
            torch.cuda.set_rng_state(state["rng_device"].cpu(), self.device)

    # -- one step --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """One forward of the objective: this rank's own noise until the gather, then shared."""
        self._noise.own()
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False
            self._noise.end()

    def _gather(self, samples: Tensor) -> Tensor:
        """The global batch of top latent samples in rank order, differentiable (module doc)."""
        if not self._in_step or self.options.divergence == "local":
            return samples  # outside a data-parallel step (evaluation), or local: this rank's
        self._noise.share()
        return gather_rows(samples)
