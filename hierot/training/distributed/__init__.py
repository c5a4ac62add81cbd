r"""Data-parallel training on ``torch.distributed``: one process per device, launched by torchrun.

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

from __future__ import annotations

import atexit
import contextlib
import hashlib
import inspect
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from hierot.errors import HierotError, NonFiniteLossError
from hierot.objectives.terms import Terms
from hierot.training.runtime import Runtime, resolve_device
from hierot.spec.schema import DistributedSpec

__all__ = [
    "DataParallelObjective",
    "CpuSyncBatchNorm",
    "DistributedRuntime",
    "convert_sync_batchnorm",
    "gather_rows",
    "init",
]

_DDP_PARAMETERS = inspect.signature(DistributedDataParallel).parameters
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# -- joining the process group -------------------------------------------------------------------
def init(device: str = "auto", options: DistributedSpec | None = None) -> DistributedRuntime:
    """This process's runtime under torchrun: join the process group (once) and pick the device.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (torchrun
    sets them, single- and multi-node alike). ``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK`` where
    CUDA is present; the ``auto`` backend is nccl on CUDA and gloo on the CPU. The process group is
    destroyed when the process exits.
    """
    options = options or DistributedSpec()
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise HierotError(
            f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} but {', '.join(missing)} not set: launch "
            f"data-parallel training with torchrun (torchrun --nproc_per_node=K -m hierot ...)"
        )
    rank, world_size, local_rank = (int(os.environ[k]) for k in _ENV[:3])
    here = _device(device, local_rank, world_size)
    backend = _backend(options.backend, here)
    if here.type == "cuda":
        torch.cuda.set_device(here)
        torch.cuda.init()  # the default generators exist from here on
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        atexit.register(_destroy)
    elif (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
        raise HierotError("torch.distributed is initialised with another rank or world size")
    return DistributedRuntime(here, rank, world_size, local_rank, options)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _device(name: str, local_rank: int, world_size: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "mps":
        raise HierotError("device: 'mps' has no torch.distributed support; use cpu (gloo)")
    if name.startswith("cuda:"):
        raise HierotError(
            f"device: {name!r} names one GPU, but each of the {world_size} processes takes its own "
            f"(cuda:LOCAL_RANK): use device: cuda or auto under torchrun"
        )
    if name == "cuda":
        resolve_device("cuda")  # a clear error when CUDA is absent
        if local_rank >= torch.cuda.device_count():
            raise HierotError(
                f"LOCAL_RANK {local_rank} but {torch.cuda.device_count()} GPU(s) visible: start "
                f"one process per GPU at most (--nproc_per_node)"
            )
        return torch.device("cuda", local_rank)
    return resolve_device(name)


def _backend(name: str, device: torch.device) -> str:
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if name == "nccl" and device.type != "cuda":
        raise HierotError(f"distributed.backend: nccl needs CUDA, the device is {device}; use gloo")
    if name == "nccl" and not dist.is_nccl_available():
        raise HierotError("distributed.backend: this torch build has no nccl; use gloo")
    return name


# -- the runtime -----------------------------------------------------------------------------------
class DistributedRuntime(Runtime):
    """One of ``world_size`` data-parallel processes (see :func:`init`)."""

    def __init__(self, device: torch.device, rank: int, world_size: int, local_rank: int,
                 options: DistributedSpec):
        super().__init__(device, rank, world_size, gather=self._gather)
        self.local_rank = local_rank
        self.options = options
        self._noise = _NoiseStreams(device, rank)
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
        return DataParallelObjective(model, self)

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


class _NoiseStreams:
    """The default generators of the CPU (and of the device) during one data-parallel step.

    Outside a step they are the *shared* stream, in the same state on every rank. :meth:`own`
    saves that state and reseeds them from a hash of it and the rank; :meth:`share` puts the
    shared state back; :meth:`end` does too, and advances any generator the step left untouched
    (so the next step's own streams differ).
    """

    def __init__(self, device: torch.device, rank: int):
        self.generators = [torch.default_generator]
        if device.type == "cuda":
            self.generators.append(torch.cuda.default_generators[device.index])
        self.rank = rank
        self._start: list[Tensor] | None = None
        self._shared: list[Tensor] | None = None

    def own(self) -> None:
        states = [g.get_state() for g in self.generators]
        digest = hashlib.blake2b(digest_size=8, person=b"hierot-ddp-rank")
        for state in states:
            digest.update(state.numpy().tobytes())
        digest.update(self.rank.to_bytes(8, "little"))
        seed = int.from_bytes(digest.digest(), "little") & (2**63 - 1)
        for generator in self.generators:
            generator.manual_seed(seed)
        self._start = self._shared = states

    def share(self) -> None:
        if self._shared is not None:
            for generator, state in zip(self.generators, self._shared):
                generator.set_state(state)
            self._shared = None

    def end(self) -> None:
        self.share()
        for generator, state in zip(self.generators, self._start or []):
            if torch.equal(generator.get_state(), state):
                torch.empty((), device=generator.device).uniform_(generator=generator)
        self._start = None


# -- the wrapped objective -----------------------------------------------------------------------
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

    def __init__(self, objective: nn.Module, runtime: DistributedRuntime):
        super().__init__()
        self.runtime = runtime
        # synchronised BatchNorm keeps the buffers equal; else rank 0's are broadcast each step
        sync_buffers = not runtime.options.sync_batchnorm
        buffers = ("forward_sync_buffers" if "forward_sync_buffers" in _DDP_PARAMETERS
                   else "broadcast_buffers")  # torch < 2.14: broadcast_buffers
        self.ddp = DistributedDataParallel(
            _LossTerms(objective),
            device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
            static_graph=True,
            **{buffers: sync_buffers},
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

    def _stop_together(self, terms: Terms) -> None:
        """Raise on every rank when any rank's objective is not finite.

        The reconstruction terms differ between ranks; a rank that stopped alone would leave the
        others waiting in the backward's collectives. The rank whose terms are not finite returns
        them (the trainer names them); the others raise here.
        """
        bad = torch.zeros(self.runtime.world_size, device=self.runtime.device)
        bad[self.runtime.rank] = float(not torch.isfinite(terms.total.detach()))
        dist.all_reduce(bad)
        ranks = bad.nonzero().flatten().tolist()
        if ranks and self.runtime.rank not in ranks:
            raise NonFiniteLossError(
                f"non-finite objective on data-parallel rank(s) {', '.join(map(str, ranks))}; "
                f"training stopped, the last good checkpoint is kept"
            )


# -- differentiable collectives -------------------------------------------------------------------
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


# -- BatchNorm over the global batch ---------------------------------------------------------------
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
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
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
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(factor * mean)
                self.running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))
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
