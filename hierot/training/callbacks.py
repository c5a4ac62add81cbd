"""The callback interface: what the trainer calls, and when.

A callback is built from its options in the spec's ``callbacks`` list (``{name: tensorboard}``)
by its registry entry's factory, ``factory(options, run_dir=..., spec=...)``
(:func:`build_callbacks`), on the main process of a run that writes a run directory
(:func:`hierot.training.parts.build_training`, called by :func:`hierot.api.fit`), or passed to it
beside them. The trainer then calls, in order:

=============================== ================================================================
``on_train_start(spec, step)``  once, before the first step (``step`` > 0 when resuming)
``on_log(step, metrics)``       every ``train.log_every`` steps: each term's mean over the
                                interval, unweighted (``rec_x``) and weighted (``w_rec_x``),
                                ``total``, ``lr``, ``step_time`` (seconds per step), ``epoch``
``on_eval(step, metrics)``      every ``train.eval_every`` steps: the ``val_*`` terms on the
                                test split
``on_checkpoint(step, path)``   after each checkpoint is written (``best.pt`` too)
``on_train_end(result)``        once, after the last step and the summary
``close()``                     always, also when training stops on an error
=============================== ================================================================

Every hook has a default that does nothing, so a callback overrides only what it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hierot.registry import callbacks as callback_registry

if TYPE_CHECKING:
    from hierot.run import Run
    from hierot.spec.schema import Spec


class Callback:
    """Base class of callbacks; each hook does nothing unless overridden (see the module doc)."""

    def on_train_start(self, spec: Spec, step: int) -> None:
        """Training starts (or resumes) at ``step``."""

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """A row of metrics.csv was logged."""

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        """The held-out terms were computed (``val_`` names)."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written to ``path``."""

    def on_train_end(self, result: Any) -> None:
        """Training finished; ``result`` is the :class:`~hierot.training.trainer.TrainResult`."""

    def close(self) -> None:
        """Release files and connections (called after ``on_train_end``, and on errors)."""


class Callbacks(Callback):
    """Several callbacks called in turn, in the spec's order."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def on_train_start(self, spec: Spec, step: int) -> None:
        for c in self.callbacks:
            c.on_train_start(spec, step)

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        for c in self.callbacks:
            c.on_log(step, metrics)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        for c in self.callbacks:
            c.on_eval(step, metrics)

    def on_checkpoint(self, step: int, path: Path) -> None:
        for c in self.callbacks:
            c.on_checkpoint(step, path)

    def on_train_end(self, result: Any) -> None:
        for c in self.callbacks:
            c.on_train_end(result)

    def close(self) -> None:
        for c in self.callbacks:
            c.close()


def build_callbacks(spec: Spec, run_dir: Run) -> list[Callback]:
    """The spec's callbacks, in its order, each built by its registry entry:
    ``factory(options, run_dir=run_dir, spec=spec)`` (what the trainer of a run that writes
    ``run_dir`` calls)."""
    return [callback_registry.build(options, run_dir=run_dir, spec=spec)
            for options in spec.callbacks]


__all__ = ["Callback", "Callbacks", "build_callbacks"]
