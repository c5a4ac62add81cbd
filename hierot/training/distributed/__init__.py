r"""Data-parallel training on ``torch.distributed``: one process per device, launched by torchrun.

================== ================================================================================
``_process_group`` joining the process group, the device and backend of each process
``_runtime``       :class:`DistributedRuntime`: sharding, barriers, broadcasts, metric means, a step
``_noise``         the random streams of a step (each rank's own until the gather, then shared)
``_ddp``           :class:`DataParallelObjective`, the objective under DDP
``_gather``        :func:`gather_rows`, the differentiable all-gather
``_batchnorm``     :class:`CpuSyncBatchNorm` and :func:`convert_sync_batchnorm`
================== ================================================================================

::

    torchrun --nproc_per_node=K -m hierot train SPEC --out runs/NAME

Every process holds the whole model and data set and trains on its contiguous share of each
global batch of ``train.batch_size`` examples. The gradients are averaged by
:class:`~torch.nn.parallel.DistributedDataParallel` (DDP), BatchNorm statistics are taken over the
global batch (:class:`torch.nn.SyncBatchNorm`, :class:`CpuSyncBatchNorm` on the CPU), and the top
divergence :math:`\mathcal D_N(Q_N^\text{agg}, P)` of Eq. (10), a statistic of the aggregate
posterior and not a mean over examples, is computed on the gathered global batch. With
``distributed.divergence: global`` (the default) a step's gradient is that of one process
training on the global batch.

**Gradients.** DDP averages the ranks' gradients. Rank :math:`r`'s loss is
:math:`L_r = R_r + w\,\mathcal D(\mathrm{gather}(z), y)`. The reconstruction terms :math:`R_r` are
means over its :math:`B/K` examples, so the average of their gradients is the gradient of the mean
over the global batch. The divergence is the same number on every rank (the gathered samples and
the prior samples are the same everywhere), and the backward of the gather (:func:`gather_rows`,
like :func:`torch.distributed.nn.functional.all_gather`) *sums* the gradients that every rank
computes for rank :math:`r`'s samples: they receive :math:`K\,\partial\mathcal D/\partial z_r`, and
DDP's average over the ranks gives back exactly :math:`\sum_r \partial\mathcal D/\partial z_r\,
\partial z_r/\partial\theta = \partial\mathcal D/\partial\theta`. No rescaling is needed. Where the
prior samples depend on the parameters (the flat objective's implicit prior), every rank computes
the same gradient and the average keeps it. Synchronised BatchNorm follows the same rule: its
all-reduce sums over the ranks in the backward too.

**Randomness.** Each step has two phases. Up to the gather (the encoders' reparameterised noise,
Monte Carlo reconstruction costs) each rank draws from a stream of its own, seeded from a hash of
the shared generator state and the rank: independent across ranks, reproducible, and resumable
from the state a checkpoint already holds. From the gather on (the prior samples, the implicit
prior's ancestral noise, the projections of a sliced divergence) every rank draws from the shared
stream: the default generators, kept in lockstep on every rank and continuing exactly as in one
process. A distributed run therefore equals a single-process run on the same global batches when
the first phase draws nothing (deterministic encoders, closed-form or deterministic costs), and is
the same estimator with other noise otherwise. With ``divergence: local`` each rank also draws its
prior samples from its own stream, and DDP averages the ranks' local-batch divergences.
"""

from hierot.training.distributed._batchnorm import CpuSyncBatchNorm, convert_sync_batchnorm
from hierot.training.distributed._ddp import DataParallelObjective
from hierot.training.distributed._gather import gather_rows
from hierot.training.distributed._process_group import from_environment, init
from hierot.training.distributed._runtime import DistributedRuntime

__all__ = [
    "CpuSyncBatchNorm",
    "DataParallelObjective",
    "DistributedRuntime",
    "convert_sync_batchnorm",
    "from_environment",
    "gather_rows",
    "init",
]
