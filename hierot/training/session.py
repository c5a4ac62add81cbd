"""One training session: a spec validated, its run directory opened, its parts built, trained.

:func:`fit` is :func:`hierot.api.fit` (and ``hierot train``); it lives here, below the sweeps,
which train their trials with it. The steps, in order, each done before anything is written:

1. the spec: validated (a :class:`~hierot.spec.schema.Spec` again too), or for a resume read
   back from the run with the changes a resume may make (:meth:`hierot.run.Run.open_resume`);
2. the runtime (:func:`hierot.training.distributed.from_environment`) and, for a new run, the
   run directory checked (:meth:`hierot.run.Run.ensure_new`);
3. the modules (:func:`hierot.builder.build`) and what the trainer uses
   (:func:`hierot.training.parts.build_training`);
4. the run directory: resumed from its newest intact checkpoint (:meth:`~hierot.run.Run.restore`
   then :meth:`~hierot.run.Run.settle_resume`), or created (:meth:`~hierot.run.Run.create`),
   its model first initialised from another run's weights (:meth:`~hierot.run.Run.init_weights`);
5. :meth:`hierot.training.trainer.Trainer.fit`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hierot.builder import Built, build
from hierot.errors import HierotError
from hierot.run import Change, Run
from hierot.spec.loading import load_spec
from hierot.spec.schema import Spec
from hierot.training.callbacks import Callback
from hierot.training.distributed import from_environment
from hierot.training.parts import build_training
from hierot.training.runtime import Runtime
from hierot.training.trainer import Trainer, TrainResult


def default_run_dir(source: Any, root: str | Path = "runs") -> Path:
    """``runs/<spec or preset name>-<YYYYmmdd-HHMMSS>``."""
    name = Path(str(source)).stem if isinstance(source, (str, Path)) else "run"
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def validate(
    spec: Spec | str | Path | Mapping[str, Any], overrides: Iterable[str] = ()
) -> Spec:
    """The validated spec of ``hierot validate``: a file, a preset, a mapping or a :class:`Spec`.

    A :class:`Spec` is validated again (one changed with pydantic's ``model_copy`` skipped
    validation). Nothing is built or written.

    Raises
    ------
    SpecError
        Every problem, one ``path: message`` line each.
    """
    if isinstance(spec, Spec):
        return load_spec(spec.model_dump(mode="json"), overrides, label="<Spec>")
    return load_spec(spec, overrides)


def fit(
    spec: Spec | str | Path | Mapping[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    save: bool = True,
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
        A :class:`Spec` (validated again, see :func:`validate`), a YAML file, a preset name or a
        mapping (ignored with ``resume``).
    out:
        Run directory to create; ``None``: ``runs/NAME-TIME`` as ``hierot train`` makes it
        (:func:`default_run_dir`).
    save:
        ``False`` trains without writing anything (``out`` must then be ``None``).
    overrides:
        ``"a.b=value"`` strings applied before validation (with ``resume`` too, e.g. to extend
        ``train.steps``).
    resume:
        A run directory to continue from its newest intact checkpoint, exactly as if never
        stopped (from step 0 when it has none). ``overrides`` may change only the fields of
        :data:`hierot.run.RESUMABLE`; they are recorded in ``RUN/changes.jsonl``.
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
    _check_arguments(spec, out, save, resume, init_from)
    if save and out is None and resume is None:
        out = default_run_dir(spec)
    run: Run | None = None
    changes: list[Change] = []
    if resume is not None:
        run = Run(resume)
        spec, changes = run.open_resume(overrides)
    else:
        assert spec is not None  # _check_arguments
        spec = validate(spec, overrides)
    runtime = runtime or from_environment(spec.device, spec.distributed)
    if resume is None:
        out = runtime.broadcast(out)  # rank 0's choice (a default name holds a timestamp)
        run = Run(out) if out is not None else None
        if run is not None:
            run.ensure_new()
    runtime.barrier()  # every rank has read and checked the run directory before rank 0 writes
    main = run if runtime.is_main else None  # writes the run directory, calls the trackers
    parts = build_training(built or build(spec, gather=runtime.gather), runtime, run=main,
                           callbacks=callbacks)
    trainer = Trainer(parts, run, runtime)
    if resume is not None:
        assert run is not None  # Run(resume), above
        _resume(trainer, run, changes)
    else:
        origin = Run(init_from).init_weights(trainer.model) if init_from is not None else None
        if main is not None:
            for problem in (origin or {}).get("skipped", []):
                _say(f"skipped {problem}")
            main.create(spec, origin)
    return trainer.fit()


def _check_arguments(spec: Any, out: Any, save: bool, resume: Any, init_from: Any) -> None:
    """Refuse combinations of :func:`fit`'s arguments that cannot be meant."""
    if not save and (out is not None or resume is not None):
        raise HierotError("fit: save=False writes nothing; it cannot take out= or resume=")
    if resume is not None and init_from is not None:
        raise HierotError("--init-from starts a new run; it cannot be combined with --resume")
    if resume is None and spec is None:
        raise HierotError("fit: give a spec (a preset name, a file, a mapping or a Spec), "
                          "or resume= a run directory")


def _resume(trainer: Trainer, run: Run, changes: list[Change]) -> None:
    """Load the newest intact checkpoint (reading only), then, on the main process, settle the
    run directory: only after everything that can fail has passed."""
    restored = run.restore(trainer.model, trainer.load_state, trainer.runtime.device)
    if trainer.total_steps < trainer.step:
        raise HierotError(
            f"--resume {run.path}: the run has reached step {trainer.step}; a budget of "
            f"{trainer.total_steps} steps would end before it (nothing was changed)"
        )
    if trainer.run_dir is not None:
        run.settle_resume(trainer.spec, trainer.step, restored, changes)


def _say(message: str) -> None:
    print(f"hierot: {message}", file=sys.stderr)
