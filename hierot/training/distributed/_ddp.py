"""The objective under DistributedDataParallel, returning the objective's ``Terms``."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from hierot.errors import NonFiniteLossError
from hierot.objectives.terms import Terms
from hierot.training.runtime import Runtime

_DDP_PARAMETERS = inspect.signature(DistributedDataParallel).parameters


class _LossTerms(nn.Module):
    """What DDP wraps: the objective, handing DDP only the tensors of the loss.

    The layer outputs (``Terms.outputs``) are kept aside: DDP looks for the parameters that
    produced its outputs, and an output outside the loss would wait for a gradient forever.
    """

    def __init__(self, objective: nn.Module):
        super().__init__()
        self.objective = objective
        self.outputs = None

    def forward(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        terms = self.objective(x)
        self.outputs = terms.outputs
        return terms.unweighted, terms.weighted


class DataParallelObjective(nn.Module):
    """An objective under :class:`~torch.nn.parallel.DistributedDataParallel`, returning ``Terms``.

    ``static_graph=True``: the same parameters take part in every step, and DDP finds once those
    that never do (the encoders above z_1 in the flat objective, Eq. 7).
    """

    def __init__(self, objective: nn.Module, runtime: Runtime, *, sync_buffers: bool = True):
        """``runtime``: this process's place (its :meth:`~Runtime.step` brackets each forward);
        ``sync_buffers``: broadcast rank 0's buffers each step (off under synchronised
        BatchNorm, which keeps them equal)."""
        super().__init__()
        self.runtime = runtime
        buffers = ("forward_sync_buffers" if "forward_sync_buffers" in _DDP_PARAMETERS
                   else "broadcast_buffers")  # torch < 2.14: broadcast_buffers
        buffer_option: dict[str, Any] = {buffers: sync_buffers}
        self.ddp = DistributedDataParallel(
            _LossTerms(objective),
            device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
            static_graph=True,
            **buffer_option,
        )

    @property
    def objective(self) -> nn.Module:
        return self.ddp.module.objective

    def forward(self, x: Tensor) -> Terms:
        with self.runtime.step():
            unweighted, weighted = self.ddp(x)
        outputs, self.ddp.module.outputs = self.ddp.module.outputs, None
        terms = Terms(unweighted, weighted, outputs)
        self._stop_together(terms)
        return terms

    skip_nonfinite = False
    """Set by the trainer under ``train.skip_update.nonfinite``: every rank skips the update
    instead of stopping (:attr:`nonfinite_ranks` says when)."""

    def _stop_together(self, terms: Terms) -> None:
        """Raise on every rank when any rank's objective is not finite (unless
        :attr:`skip_nonfinite`); :attr:`nonfinite_ranks` lists those ranks.

        The reconstruction terms differ between ranks; a rank that stopped alone would leave the
        others waiting in the backward's collectives. The rank whose terms are not finite returns
        them (the trainer names them); the others raise here.
        """
        bad = torch.zeros(self.runtime.world_size, device=self.runtime.device)
        bad[self.runtime.rank] = float(not torch.isfinite(terms.total.detach()))
        dist.all_reduce(bad)
        ranks = bad.nonzero().flatten().tolist()
        self.nonfinite_ranks: list[int] = ranks
        if ranks and self.runtime.rank not in ranks and not self.skip_nonfinite:
            raise NonFiniteLossError(
                f"non-finite objective on data-parallel rank(s) {', '.join(map(str, ranks))}; "
                f"training stopped, the last good checkpoint is kept"
            )
