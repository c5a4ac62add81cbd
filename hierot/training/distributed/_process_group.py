"""Joining the process group under torchrun, and choosing each process's device and backend."""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist

from hierot.errors import HierotError
from hierot.run import resolve_device
from hierot.spec.schema import DistributedSpec
from hierot.training.distributed._runtime import DistributedRuntime
from hierot.training.runtime import Runtime, single_process

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def from_environment(device: str = "auto", options: Any = None) -> Runtime:
    """The runtime this process was started in: one process unless launched data-parallel.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this joins the process group, see :func:`init`;
    ``options`` is the spec's ``distributed`` section.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return init(device, options)
    return single_process(device)


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
    """At exit: free what still holds the process group, then destroy it.

    Objects that hold the group (a ``DistributedDataParallel`` and its reducer, their pending
    gloo work with its tensors) can outlive the code that made them in a reference cycle, such
    as the traceback of an exception that was caught (:class:`DataParallelObjective` raises on
    the ranks whose objective stayed finite when another's did not). Left to the interpreter's
    finalisation, they are destroyed after the group, while the interpreter is being torn down;
    a collection first frees them while both are alive.
    """
    if dist.is_initialized():
        import gc

        gc.collect()
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
