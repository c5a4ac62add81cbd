"""The Python API, mirroring the CLI: ``load_spec``, ``build``, ``fit``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hierot.builder import Built, build
from hierot.callbacks import Callback, build_callbacks
from hierot.errors import HierotError
from hierot.spec.loading import dump_spec, load_spec
from hierot.spec.run_spec import load_run_spec
from hierot.spec.schema import Spec
from hierot.training import resume as resuming
from hierot.training.distributed import from_environment
from hierot.training.rundir import RunDir, atomic_write_text
from hierot.training.runtime import Runtime
from hierot.training.trainer import CHECKPOINT_FORMAT, Trainer, TrainResult, total_steps


def _say(message: str) -> None:
    print(f"hierot: {message}", file=sys.stderr)


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
    init_from: str | Path | None = None,
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
        A run directory to continue from its newest intact checkpoint, exactly as if never
        stopped (from step 0 when it has none). ``overrides`` may change only the fields of
        :data:`hierot.training.resume.RESUMABLE`; they are recorded in ``RUN/changes.jsonl``.
        Anything else raises :class:`~hierot.errors.RunChangedError` and nothing in the run is
        changed.
    runtime:
        Device and data-parallel rank (default: one process on ``spec.device``).
    built:
        Already built modules for ``spec`` (skips the builder).
    callbacks:
        :class:`~hierot.callbacks.Callback` objects called beside the spec's ``callbacks``.
    init_from:
        A run directory whose newest intact checkpoint's model weights start this new run (the
        optimiser, data order and step start afresh); the architectures must match. Recorded
        in ``OUT/origin.json``.
    """
    overrides = list(overrides)
    changes: list[resuming.Change] = []
    if resume is not None:
        if init_from is not None:
            raise HierotError("--init-from starts a new run; it cannot be combined with --resume")
        run_dir = RunDir(resume)
        run_dir.require()
        run_dir.read_metrics()  # a damaged metrics.csv is named before anything is written
        spec = load_run_spec(run_dir.path, overrides)
        changes = resuming.check_resume(run_dir, load_run_spec(run_dir.path), spec)
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
        _resume(trainer, run_dir, changes)
    else:
        origin = None
        if init_from is not None:
            origin, skipped = resuming.init_from(trainer.model, init_from, CHECKPOINT_FORMAT)
            if trainer.run_dir is not None:
                for problem in skipped:
                    _say(f"skipped {problem}")
        if trainer.run_dir is not None:
            run_dir.create(dump_spec(spec))
            if origin is not None:
                atomic_write_text(run_dir.origin_file, json.dumps(origin, indent=2))
    return trainer.fit()


def _resume(trainer: Trainer, run_dir: RunDir, changes: list[resuming.Change]) -> None:
    """Load the newest intact checkpoint (reading only), then, on the main process, tidy the run
    directory and record what changed: only after everything that can fail has passed."""
    used, skipped = resuming.restore(trainer, run_dir, CHECKPOINT_FORMAT)
    budget = total_steps(trainer.built, trainer.order)
    if budget < trainer.step:
        raise HierotError(
            f"--resume {run_dir.path}: the run has reached step {trainer.step}; a budget of "
            f"{budget} steps would end before it (nothing was changed)"
        )
    if trainer.run_dir is None:
        return
    run_dir.remove_temporaries()
    for problem in skipped:
        _say(f"skipped {problem}")
    if used is None:
        _say(f"{run_dir.path} holds no checkpoint yet: training it again from step 0 "
             f"(seed {trainer.spec.seed})")
        run_dir.metrics_file.unlink(missing_ok=True)  # rows of steps that no checkpoint kept
    elif skipped:
        _say(f"resuming from {run_dir.relative(used)} (step {trainer.step}), the newest intact checkpoint")
    if changes or skipped:
        notes = {"skipped": skipped} if skipped else {}
        resuming.record(run_dir, trainer.step, changes, **notes)
    if changes:
        atomic_write_text(run_dir.spec_file, dump_spec(trainer.spec))
    run_dir.truncate_metrics(trainer.step)


__all__ = ["build", "default_run_dir", "fit", "load_spec"]
