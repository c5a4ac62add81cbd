"""hierot: hierarchical optimal-transport autoencoders (StackedWAE) as a plug-in framework.

>>> import hierot
>>> spec = hierot.load_spec("quickstart", ["train.steps=10"])
>>> result = hierot.fit(spec, out="runs/demo")  # doctest: +SKIP
>>> hierot.evaluate("runs/demo")  # doctest: +SKIP

Every ``hierot`` command is a function here with the same name and defaults (:mod:`hierot.api`):
``validate``, ``fit`` (``hierot train``), ``evaluate`` (``hierot eval``), ``plot``, ``sample``,
``report``, ``compare``, ``sweep``, ``sweep_report`` (``hierot sweep --report``) and
``list_components`` (``hierot list``).

The names below are imported on first use, so ``import hierot`` (and ``hierot --help``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from hierot._version import __version__ as __version__  # re-exported
from hierot.errors import HierotError, SpecError

_EXPORTS = {
    "fit": "hierot.api",
    "validate": "hierot.api",
    "evaluate": "hierot.api",
    "plot": "hierot.api",
    "sample": "hierot.api",
    "compare": "hierot.api",
    "sweep": "hierot.api",
    "sweep_report": "hierot.api",
    "report": "hierot.api",
    "list_components": "hierot.api",
    "Built": "hierot.builder",
    "build": "hierot.builder",
    "load_spec": "hierot.spec.loading",
    "Spec": "hierot.spec.schema",
}
"""Public name -> the module defining it (``module:attribute`` where the names differ)."""

__all__ = ["Built", "HierotError", "Spec", "SpecError", "build", "compare", "evaluate", "fit",
           "list_components", "load_spec", "plot", "report", "sample", "sweep", "sweep_report",
           "validate"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, _, attribute = _EXPORTS[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
