"""Batches of indices into the training set, with resumable order, and their rows.

Epoch e visits the data in the order ``randperm(n)`` drawn from a generator seeded by
(seed, e), so the order after a resume is a function of (epoch, offset) alone: nothing but two
integers needs saving. The last incomplete batch of an epoch is dropped, which keeps every batch
(and every rank's share of it) the same size.

:func:`gather_rows` fetches a batch's rows, as stored (uint8 images stay uint8): from the tensor
held on the device, or, for a streamed training set (``data.storage: stream``), read from its
cache file on the host, pinned and copied to the device without blocking on CUDA. Under data
parallelism each process asks only for its shard's indices, so it reads only its share.

:func:`fixed_batches` gives the same few batches at every call, for passes outside training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hierot.components import StreamedSplit
from hierot.errors import HierotError


def gather_rows(rows: Tensor | StreamedSplit, indices: Tensor, device: torch.device) -> Tensor:
    """Rows ``indices`` (CPU int64) of the training set on ``device``, in the stored dtype."""
    if isinstance(rows, Tensor):
        return rows[indices.to(rows.device)]
    batch = rows.read(indices)
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


@dataclass
class BatchOrder:
    """Global batches of ``batch_size`` indices over ``n`` examples."""

    n: int
    batch_size: int
    seed: int
    epoch: int = 0
    offset: int = 0
    """Index of the next batch within the epoch."""

    def __post_init__(self) -> None:
        if self.batch_size > self.n:
            raise HierotError(
                f"train.batch_size: {self.batch_size} is larger than the {self.n} training examples"
            )
        self._order: Tensor | None = None
        self._order_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def _epoch_order(self) -> Tensor:
        if self._order_epoch != self.epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(self.n, generator=generator)
            self._order_epoch = self.epoch
        return self._order  # type: ignore[return-value]

    def next(self) -> Tensor:
        """The next global batch of indices (CPU, int64)."""
        start = self.offset * self.batch_size
        batch = self._epoch_order()[start : start + self.batch_size]
        self.offset += 1
        if self.offset == self.batches_per_epoch:
            self.epoch, self.offset = self.epoch + 1, 0
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])


def fixed_batches(n: int, batch_size: int, seed: int, count: int) -> list[Tensor]:
    """``count`` global batches (at most one epoch's) of a fixed permutation of ``range(n)``,
    drawn from a generator of their own seeded by ``seed``: the same at every call, apart from
    the training order and the global RNG (for passes that must not disturb training, such as
    the EMA's BatchNorm statistics)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    size = min(batch_size, n)
    return [order[b * size:(b + 1) * size] for b in range(min(count, n // size))]
