"""The Python API, mirroring the CLI: ``load_spec``, ``build``, ``fit``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hierot.builder import Built, build
from hierot.callbacks import Callback, build_callbacks
from hierot.spec.loading import dump_spec, load_spec
from hierot.spec.run_spec import load_run_spec
from hierot.training.rundir import RunDir, atomic_write_text
from hierot.training.distributed import from_environment
from hierot.training.runtime import Runtime
from hierot.spec.schema import Spec
from hierot.training.trainer import Trainer, TrainResult


def default_run_dir(source: Any, root: str | Path = "runs") -> Path:
    """``runs/<spec or preset name>-<YYYYmmdd-HHMMSS>``."""
    name = Path(str(source)).stem if isinstance(source, (str, Path)) else "run"
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def fit(
    spec: Spec | str | Path | Mapping[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: str | Path | None = None,
    runtime: Runtime | None = None,
    built: Built | None = None,
    callbacks: Iterable[Callback] = (),
) -> TrainResult:
    """Train a hierarchy.

    Parameters
    ----------
    spec:
        A :class:`Spec`, a YAML file, a preset name or a mapping (ignored with ``resume``).
    out:
        Run directory to create; ``None`` trains without writing anything.
    overrides:
        ``"a.b=value"`` strings applied before validation (with ``resume`` too, e.g. to extend
        ``train.steps``).
    resume:
        A run directory to continue from its last checkpoint, exactly as if never stopped.
    runtime:
        Device and data-parallel rank (default: one process on ``spec.device``).
    built:
        Already built modules for ``spec`` (skips the builder).
    callbacks:
        :class:`~hierot.callbacks.Callback` objects called beside the spec's ``callbacks``.
    """
    overrides = list(overrides)
    if resume is not None:
        run_dir = RunDir(resume)
        run_dir.require()
        spec = load_run_spec(run_dir.path, overrides)
    elif not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    elif overrides:
        spec = load_spec(spec.model_dump(mode="json"), overrides)
    runtime = runtime or from_environment(spec.device, spec.distributed)
    if resume is None:
        out = runtime.broadcast(out)  # rank 0's choice (a default name holds a timestamp)
        run_dir = RunDir(out) if out is not None else None
        if run_dir is not None:
            run_dir.ensure_new()
    runtime.barrier()  # every rank has read and checked the run directory before rank 0 writes
    if run_dir is not None and runtime.is_main:  # trackers: the main process of a run only
        callbacks = [*build_callbacks(spec, run_dir), *callbacks]
    trainer = Trainer(built or build(spec, gather=runtime.gather), run_dir, runtime,
                      callbacks=tuple(callbacks))
    if resume is not None:
        if overrides and trainer.run_dir is not None:
            atomic_write_text(run_dir.spec_file, dump_spec(spec))
        trainer.resume(run_dir)
    elif trainer.run_dir is not None:
        run_dir.create(dump_spec(spec))
    return trainer.fit()


__all__ = ["build", "default_run_dir", "fit", "load_spec"]
