"""The differentiable all-gather of rows (the divergence's samples, BatchNorm's statistics)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, samples: Tensor, group: Any) -> Tensor:
        parts = [torch.empty_like(samples) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, samples.contiguous(), group=group)
        ctx.group, ctx.rank, ctx.rows = group, dist.get_rank(group), samples.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows], None


def gather_rows(samples: Tensor, group: Any = None) -> Tensor:
    """Every rank's ``samples`` concatenated in rank order (equal shapes on every rank).

    Differentiable: the gradient reaching this rank's rows is the *sum* over the ranks of the
    gradients each computed for those rows (as with ``torch.distributed.nn.functional.all_gather``).
    """
    return _GatherRows.apply(samples, group or dist.group.WORLD)
