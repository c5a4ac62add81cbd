"""Training: the loop, the order of batches, the run directory, and where the processes run.

================ ==================================================================================
``session``      :func:`~hierot.training.session.fit`: validate, open the run, build, train
``parts``        what the trainer uses, built for one runtime (precision, compile, wrapping,
                 optimiser, schedule, EMA, held-out evaluation, callbacks)
``trainer``      the loop only: step, finite check, metrics, checkpoints
``batches``      resumable batch order over a data set held whole on the device
``runtime``      one process's device, rank and world size; sharding and the divergence's gather
``distributed``  the data-parallel runtime under ``torchrun`` (process group, DDP, synchronised
                 BatchNorm, the differentiable gather)
================ ==================================================================================

The public names are exported here (``from hierot.training import Trainer``) and imported on
first use: importing the package imports none of its modules. The run directory is
:mod:`hierot.run`'s, a layer below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers; at run time: __getattr__
    from hierot.training.callbacks import Callback
    from hierot.training.compiling import cpp_compiler
    from hierot.training.parts import TrainingParts, build_training
    from hierot.training.runtime import Runtime, single_process
    from hierot.training.trainer import Trainer, TrainResult

_EXPORTS = {
    "Callback": "hierot.training.callbacks",
    "cpp_compiler": "hierot.training.compiling",
    "TrainingParts": "hierot.training.parts",
    "build_training": "hierot.training.parts",
    "Runtime": "hierot.training.runtime",
    "single_process": "hierot.training.runtime",
    "Trainer": "hierot.training.trainer",
    "TrainResult": "hierot.training.trainer",
}
"""Public name -> the module defining it (imported on first use)."""

__all__ = ["Callback", "Runtime", "TrainResult", "Trainer", "TrainingParts", "build_training",
           "cpp_compiler", "single_process"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
