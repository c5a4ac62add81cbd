"""One run directory, owned by one object: :class:`Run` creates, resumes and initialises it.

The layout is :mod:`hierot.run._layout`'s; every write is atomic (a temporary beside the file,
renamed over it: a crash mid-write leaves the previous file intact, and the temporaries such a
crash leaves, ``.step-*.pt.XXXX``, are removed when the run starts or resumes); checkpoints are
written and read in the format of :mod:`hierot.run._checkpoint`. See ``docs/rundir.md``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierot.errors import CheckpointError, HierotError
from hierot.run import _layout as layout
from hierot.run._atomic import atomic_open, atomic_torch_save, atomic_write_text
from hierot.run._changes import Change, check_resume, read_changes, record
from hierot.run._checkpoint import check_architecture, check_state, read_checkpoint
from hierot.run._environment import environment
from hierot.run._metrics import MetricsWriter, read_metrics_file
from hierot.run._spec import load_run_spec
from hierot.spec.loading import dump_spec
from hierot.spec.schema import Spec


def _say(message: str) -> None:
    print(f"hierot: {message}", file=sys.stderr)


class Run:
    """One run directory; path-like: ``run / "x.jsonl"`` is a :class:`~pathlib.Path` in it.

    ``path`` is the directory as a :class:`~pathlib.Path`; ``os.fspath(run)`` and
    ``open(run / name)`` work as they would on it (what a callback factory receives as
    ``run_dir=``, see docs/plugins.md). Nothing is read or written until a method is called.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.path / other

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    spec_file = property(lambda self: self.path / layout.SPEC)
    metrics_file = property(lambda self: self.path / layout.METRICS)
    checkpoint_dir = property(lambda self: self.path / layout.CHECKPOINTS)
    best_file = property(lambda self: self.checkpoint_dir / layout.BEST)
    summary_file = property(lambda self: self.path / layout.SUMMARY)
    environment_file = property(lambda self: self.path / layout.ENVIRONMENT)
    changes_file = property(lambda self: self.path / layout.CHANGES)
    origin_file = property(lambda self: self.path / layout.ORIGIN)
    eval_file = property(lambda self: self.path / layout.EVAL)
    report_file = property(lambda self: self.path / layout.REPORT)
    figures_dir = property(lambda self: self.path / layout.FIGURES)

    # -- creating ------------------------------------------------------------------------------
    def ensure_new(self) -> None:
        """Refuse to start a run over one that holds a checkpoint (nothing written is touched).

        Also checks, before anything is built, that the directory can be created and written.
        """
        if self.spec_file.exists() and self.checkpoint_files():
            raise HierotError(
                f"--out {self.path}: already holds a run (spec.yaml, checkpoints); resume it with "
                f"`hierot train --resume {self.path}`, branch from it with "
                f"`--init-from {self.path}`, or choose another --out"
            )
        ensure_writable(self.path)

    def create(self, spec: Spec, origin: dict[str, Any] | None = None) -> None:
        """Start a new run of ``spec`` here: ``spec.yaml``, ``environment.json`` and, for a run
        branched with :meth:`init_weights`, ``origin.json``.

        Refuses a directory that already holds a checkpointed run; one that never wrote a
        checkpoint is started again from scratch (nothing of it could be resumed).
        """
        self.ensure_new()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.remove_temporaries()
        for stale in (self.metrics_file, self.summary_file, self.changes_file, self.origin_file):
            stale.unlink(missing_ok=True)
        atomic_write_text(self.spec_file, dump_spec(spec))
        atomic_write_text(self.environment_file, json.dumps(environment(), indent=2))
        if origin is not None:
            atomic_write_text(self.origin_file, json.dumps(origin, indent=2))

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporaries of interrupted atomic writes; returns what was removed."""
        removed = []
        for directory in (self.path, self.checkpoint_dir):
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if layout.TEMPORARY.match(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    def require(self) -> None:
        """Refuse a directory that holds no run (no ``spec.yaml``)."""
        if not self.spec_file.is_file():
            raise HierotError(f"{self.path} is not a run directory (no spec.yaml in it)")

    def spec(self, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
        """The run's validated spec (older forms converted, see :func:`hierot.run.upgrade`)."""
        return load_run_spec(self.path, overrides)

    # -- resuming ------------------------------------------------------------------------------
    def open_resume(self, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Spec, list[Change]]:
        """The spec a resume with ``overrides`` trains, and what it changes (reads only).

        Raises
        ------
        HierotError
            Not a run directory, or a damaged ``metrics.csv`` (named before anything is written);
            :class:`~hierot.errors.RunChangedError` for changes a resume may not make.
        """
        self.require()
        self.read_metrics()
        spec = self.spec(overrides)
        return spec, check_resume(self.path, self.spec(), spec)

    def restore(self, model: nn.Module, load_state: Callable[[dict[str, Any]], None],
                device: torch.device | str = "cpu") -> tuple[Path | None, list[str]]:
        """Load the newest intact checkpoint through ``load_state`` (reads, never writes).

        A checkpoint that is empty, truncated, corrupt, foreign (another architecture than
        ``model``'s, another optimiser) or non-finite is reported and the one before it tried.
        Returns the checkpoint used (``None`` when the run has none: it starts again from step
        0) and one message per newer checkpoint skipped, naming the file and what is wrong.

        Raises
        ------
        CheckpointError
            Checkpoints exist but none is intact (each is listed).
        """
        problems: list[str] = []
        files = self.checkpoint_files()
        for path in reversed(files):
            try:
                state = read_checkpoint(path, device)
                check_state(state, path)
                check_architecture(model, state["model"], str(path))
                _load(load_state, state, path)
                return path, problems
            except CheckpointError as exc:
                problems.append(str(exc))
        if files:
            listed = "\n".join(f"  {p}" for p in problems)
            raise CheckpointError(
                f"--resume {self.path}: no intact checkpoint to resume from:\n{listed}\n"
                f"Nothing was changed. To train it again from step 0, move these files away, or "
                f"train the spec into a new --out."
            )
        return None, problems

    def settle_resume(self, spec: Spec, step: int, restored: tuple[Path | None, list[str]],
                      changes: list[Change]) -> None:
        """After :meth:`restore` (everything that can fail has passed): tidy the directory, say
        what was skipped, record the changes (``changes.jsonl``, ``spec.yaml``), and drop the
        metrics rows logged after ``step`` (they are redone)."""
        used, skipped = restored
        self.remove_temporaries()
        for problem in skipped:
            _say(f"skipped {problem}")
        if used is None:
            _say(f"{self.path} holds no checkpoint yet: training it again from step 0 "
                 f"(seed {spec.seed})")
            self.metrics_file.unlink(missing_ok=True)  # rows of steps that no checkpoint kept
        elif skipped:
            _say(f"resuming from {self.relative(used)} (step {step}), "
                 f"the newest intact checkpoint")
        if changes or skipped:
            record(self.changes_file, step, changes, **({"skipped": skipped} if skipped else {}))
        if changes:
            atomic_write_text(self.spec_file, dump_spec(spec))
        self.truncate_metrics(step)

    def read_changes(self) -> list[dict[str, Any]]:
        """The entries of ``changes.jsonl`` (a line cut short by a crash is skipped)."""
        return read_changes(self.changes_file)

    # -- initialising from another run ---------------------------------------------------------
    def init_weights(self, model: nn.Module) -> dict[str, Any]:
        """Load this run's newest intact model weights into ``model`` (``--init-from``).

        Only the weights (and BatchNorm statistics) are taken: the optimiser, data order and
        step start afresh. Returns the record the new run keeps as ``origin.json`` (its
        ``skipped`` lists the checkpoints passed over, by file and problem).

        Raises
        ------
        CheckpointError
            No intact checkpoint, or weights that do not fit ``model`` (the parameters named).
        """
        self.require()
        problems: list[str] = []
        for path in reversed(self.checkpoint_files()):
            try:
                state = read_checkpoint(path)
                check_state(state, path)
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            check_architecture(model, state["model"], f"--init-from {path}")
            model.load_state_dict(state["model"])
            return {"init_from": str(self.path.resolve()), "checkpoint": self.relative(path),
                    "step": int(state["step"]), "skipped": problems}
        detail = "".join(f"\n  {p}" for p in problems)
        raise CheckpointError(
            f"--init-from {self.path}: no intact checkpoint to start from{detail}")

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        return self.checkpoint_files()

    def checkpoint_files(self) -> list[Path]:
        """Checkpoint files (``step-*.pt``, intact or not), oldest first."""
        found = [p for p in self.checkpoint_dir.glob("step-*.pt") if layout.is_step_file(p.name)]
        return sorted(found, key=layout.step_of)

    def checkpoint(self, step: int | str | None = None) -> Path:
        """The checkpoint of ``step`` (default: the last one; ``"best"``: ``best.pt``)."""
        found = self.checkpoints()
        if step == layout.BEST_NAME:
            if not self.best_file.is_file():
                steps = ", ".join(str(layout.step_of(p)) for p in found) or "none"
                raise HierotError(
                    f"{self.checkpoint_dir} holds no {layout.BEST}: it is written only when the "
                    f"spec sets train.eval_every; checkpoints by step: {steps}")
            return self.best_file
        if not found:
            raise HierotError(f"{self.checkpoint_dir} holds no checkpoint yet")
        if step is None:
            return found[-1]
        path = self.checkpoint_dir / layout.step_file(int(step))
        if path not in found:
            steps = ", ".join(str(layout.step_of(p)) for p in found)
            raise HierotError(f"no checkpoint of step {step} in {self.checkpoint_dir}; "
                              f"steps: {steps}")
        return path

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write ``state`` as the checkpoint of ``step``, keeping the newest ``keep``."""
        path = self.checkpoint_dir / layout.step_file(step)
        atomic_torch_save(state, path)
        for old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        """Write ``state`` as ``best.pt`` (the best held-out evaluation so far)."""
        atomic_torch_save(state, self.best_file)
        return self.best_file

    def load_checkpoint(self, step: int | str | None = None,
                        map_location: Any = "cpu") -> dict[str, Any]:
        """The checkpoint of ``step`` (default: the last; ``"best"``: ``best.pt``);
        :class:`CheckpointError` names a bad file, what is wrong with it, and the other steps to
        choose from."""
        path = self.checkpoint(step)
        try:
            return read_checkpoint(path, map_location)
        except CheckpointError as exc:
            others = [str(layout.step_of(p)) for p in self.checkpoint_files() if p != path]
            hint = (f"; other checkpoints: steps {', '.join(others)} (--checkpoint STEP)"
                    if others else "")
            raise CheckpointError(f"{exc}{hint}") from None

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, for messages."""
        try:
            return str(Path(path).relative_to(self.path))
        except ValueError:
            return str(path)

    # -- metrics and summary -------------------------------------------------------------------
    def metrics_writer(self) -> MetricsWriter:
        """Appends rows to ``metrics.csv`` (see :class:`~hierot.run.MetricsWriter`)."""
        return MetricsWriter(self.metrics_file)

    def read_metrics(self) -> list[dict[str, float]]:
        """The rows of metrics.csv (a last line cut short by a crash is left out); a damaged
        file raises :class:`~hierot.run.MetricsFileError` naming it."""
        return read_metrics_file(self.metrics_file)[1]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows logged after ``after_step`` (they are redone when a run resumes)."""
        if not self.metrics_file.exists():
            return
        fields, rows = read_metrics_file(self.metrics_file)
        with atomic_open(self.metrics_file) as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows
                             if r["step"] <= after_step)

    def write_summary(self, steps: int, wall_time: float) -> None:
        """``summary.json``: the steps, wall time, first and last logged rows, last checkpoint."""
        metrics = self.read_metrics()
        summary = {
            "steps": steps,
            "wall_time_s": round(wall_time, 2),
            "first_logged": metrics[0] if metrics else {},
            "last_logged": metrics[-1] if metrics else {},
            "checkpoint": self.relative(self.checkpoint()),
        }
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2))


def _load(load_state: Callable[[dict[str, Any]], None], state: dict[str, Any],
          path: Path) -> None:
    """``load_state(state)``; a state that does not fit is a :class:`CheckpointError` of
    ``path`` (the one before it is tried), a :class:`HierotError` is true of every checkpoint."""
    try:
        load_state(state)
    except HierotError:
        raise  # e.g. another world size: true of every checkpoint, no fallback
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        raise CheckpointError(
            f"{path}: does not fit this run's optimiser or state ({type(exc).__name__}: {exc})"
        ) from None


def _cell(value: float) -> int | float:
    """A number as MetricsWriter wrote it (``step`` and other whole numbers without ``.0``)."""
    return int(value) if value.is_integer() else value


def ensure_writable(path: Path) -> None:
    """Refuse, before anything is built, a run directory that cannot be created or written."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HierotError(f"--out {path}: {existing} is a file, not a directory")
    try:  # os.access says yes to root on a read-only mount: try it
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise HierotError(f"--out {path}: cannot write in {existing} ({exc.strerror})") from None
