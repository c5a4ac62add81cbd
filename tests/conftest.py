"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Every tensor test runs on the CPU and, where present, on CUDA."""
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _kernel_cache(tmp_path_factory):
    """The C kernels of ``train.fused_update`` are built into this session's temporary folder
    (``$HIEROT_KERNEL_CACHE``, inherited by the processes tests start), not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIEROT_KERNEL_CACHE", str(tmp_path_factory.mktemp("kernels")))
        yield
