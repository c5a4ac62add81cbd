"""hierot: hierarchical optimal-transport autoencoders (StackedWAE) as a plug-in framework.

>>> import hierot
>>> spec = hierot.load_spec("quickstart", ["train.steps=10"])
>>> result = hierot.fit(spec, out="runs/demo")  # doctest: +SKIP

The names below are imported on first use, so ``import hierot`` (and ``hierot --help``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from hierot.errors import HierotError, SpecError

_EXPORTS = {
    "fit": "hierot.api",
    "Built": "hierot.builder",
    "build": "hierot.builder",
    "load_spec": "hierot.spec.loading",
    "Spec": "hierot.spec.schema",
}

__version__ = "0.2.0"
__all__ = ["Built", "HierotError", "Spec", "SpecError", "build", "fit", "load_spec"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
