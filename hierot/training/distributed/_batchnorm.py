"""BatchNorm with statistics over the global batch (SyncBatchNorm, and its CPU counterpart)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from hierot.training.distributed._gather import gather_rows


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    r"""BatchNorm with statistics over the global batch, on the CPU (gloo).

    :class:`torch.nn.SyncBatchNorm` runs on accelerators only. Here each rank computes the count
    :math:`n_r`, mean :math:`\mu_r` and sum of squared deviations :math:`M_r` of each channel over
    its share, one differentiable all-gather collects them, and every rank merges them (Chan et
    al., 1979):

    .. math::

        n = \sum_r n_r, \qquad \mu = \frac1n \sum_r n_r \mu_r, \qquad
        \sigma^2 = \frac1n \sum_r \big(M_r + n_r (\mu_r - \mu)^2\big),

    the biased variance over the global batch, as :func:`torch.nn.functional.batch_norm` computes
    it on one process, without the cancellation of :math:`E[x^2] - \mu^2`; the running variance
    takes the unbiased :math:`\sigma^2 n / (n - 1)`. One collective forward and one backward per
    layer. Outside training, or in one process, it is plain BatchNorm.
    """

    def __init__(self, *args: Any, process_group: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        group = self.process_group or dist.group.WORLD
        if not (self.training and dist.is_initialized() and dist.get_world_size(group) > 1):
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            tracked = self.num_batches_tracked
            assert tracked is not None  # a buffer wherever track_running_stats
            tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(tracked)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.new_tensor([input.numel() // input.shape[1]])
        local_mean = input.mean(dims)
        local_m2 = (input - local_mean.view(shape)).square().sum(dims)
        stats = gather_rows(torch.cat([count, local_mean, local_m2]).unsqueeze(0), group)
        counts, means, m2s = stats[:, :1].detach(), *stats[:, 1:].chunk(2, dim=1)
        n = counts.sum()
        mean = (counts * means).sum(0) / n
        var = (m2s + counts * (means - mean).square()).sum(0) / n
        out = (input - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            running_mean, running_var = self.running_mean, self.running_var
            assert running_mean is not None and running_var is not None  # as tracked, above
            with torch.no_grad():
                running_mean.mul_(1 - factor).add_(factor * mean)
                running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))
        return out


def convert_sync_batchnorm(
    module: nn.Module, device: torch.device, process_group: Any = None
) -> nn.Module:
    """Every BatchNorm layer of ``module`` synchronised over the ranks (children in place).

    :class:`torch.nn.SyncBatchNorm` on accelerators, :class:`CpuSyncBatchNorm` on the CPU; either
    shares the original layer's parameters and buffers, so state dicts and optimisers are unchanged.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    batch_norm = nn.modules.batchnorm._BatchNorm
    if isinstance(module, batch_norm) and not isinstance(module, CpuSyncBatchNorm):
        synced = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                  module.track_running_stats, process_group=process_group)
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        synced.running_mean, synced.running_var = module.running_mean, module.running_var
        synced.num_batches_tracked = module.num_batches_tracked
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device, process_group))
    return module
