"""CPU training without per-step page faults: glibc keeps the memory a step frees for the next.

A training step allocates and frees the same large buffers every time: activations, gradients,
and under bf16 the bfloat16 copies of the weights and the float32 copies of their gradients.
glibc serves blocks above its ``mmap`` threshold (128 KiB, raised dynamically up to 32 MiB) with
fresh ``mmap`` calls and gives memory at the top of the heap back to the system above its trim
threshold, so each step touches new pages: on ``mnist-stackedwae.v1`` at batch 128 in bf16, about
5,000-6,000 minor page faults a step, with 230-320 once freed memory is kept (measured with
``getrusage``; see docs/precision.md). :func:`keep_freed_memory` sets the three ``mallopt``
parameters that keep it (the effect that ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``
and ``MALLOC_TOP_PAD_`` have when set before the process starts, or jemalloc/tcmalloc have when
preloaded). The process then holds its peak memory until it exits.

It is process-wide: the trainer calls it once for CPU training on Linux with glibc;
``HIEROT_KEEP_FREED_MEMORY=0`` in the environment leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 * 2**20
"""Blocks up to 32 MiB (glibc's largest allowed threshold on 64-bit) come from the heap."""
TRIM_THRESHOLD = 2**30
TOP_PAD = 64 * 2**20

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse (once per process); whether it was set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("HIEROT_KEEP_FREED_MEMORY", "1") == "0":
        return _done
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = all(libc.mallopt(option, value) == 1 for option, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD)))
    except (OSError, AttributeError):  # no libc to load, or no mallopt in it
        _done = False
    return _done


__all__ = ["keep_freed_memory"]
