"""``RUN/environment.json``: versions, machine and plug-ins, recorded beside every run."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def environment() -> dict[str, Any]:
    """Versions, machine and plug-ins, recorded beside every run and benchmark."""
    from importlib.metadata import PackageNotFoundError, version

    from hierot.registry import ALL

    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": {p: v(p) for p in ("hierot", "torch", "pot", "geomloss", "pydantic", "numpy")},
        "plugins": {
            kind: {e.name: e.source for e in registry.entries() if e.source != "hierot"}
            for kind, registry in ALL.items()
        },
    }
