"""The run directory: everything needed to understand and reproduce a run.

::

    RUN/spec.yaml              the resolved spec (every default filled in)
    RUN/metrics.csv            every objective term per logged step, plus wall time
    RUN/checkpoints/step-*.pt  model, optimiser, data order and RNG state (atomic writes)
    RUN/summary.json           final numbers, written when training ends
    RUN/environment.json       versions, device, plug-ins
    RUN/changes.jsonl          changes made on resume (budget, cadence), with their step
    RUN/origin.json            the run whose weights started this one (``--init-from``)

Checkpoints are written to a temporary file and renamed into place, so a crash mid-write leaves
the previous checkpoint intact; the temporaries such a crash leaves (``.step-*.pt.XXXX``) are
removed when the run starts or resumes. Checkpoints hold tensors, numbers and strings only and
load with ``torch.load(path, weights_only=True)``; one that cannot be read is reported by name
with what is wrong (:class:`~hierot.errors.CheckpointError`). See ``docs/rundir.md``.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import platform
import re
import tempfile
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, TextIO

import torch

from hierot.errors import CheckpointError, HierotError
from hierot.training._atomic import _name, atomic_open, atomic_torch_save, atomic_write_text
from hierot.training.metrics_csv import read_metrics_file

_STEP_FILE = re.compile(r"step-(\d+)\.pt$")
_TEMPORARY = re.compile(
    r"^\.(step-\d+\.pt|best\.pt|spec\.yaml|metrics\.csv|summary\.json|environment\.json|origin\.json"
    r"|eval\.json|report\.md)\.[A-Za-z0-9_]+$"
)
"""Names :class:`atomic_open` gives its temporaries (``.NAME.XXXXXXXX``) in a run directory."""


BEST_NAME = "best"
BEST = f"{BEST_NAME}.pt"


def _step_of(path: Path) -> int:
    """The training step in a checkpoint's file name (``step-00000100.pt`` -> 100)."""
    match = _STEP_FILE.search(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a checkpoint's file name (step-NNNNNNNN.pt)")
    return int(match.group(1))


class RunDir:
    """Reads and writes one run directory; path-like: ``run_dir / "x.jsonl"`` is a :class:`Path`.

    ``path`` is the directory as a :class:`~pathlib.Path`; ``os.fspath(run_dir)`` and
    ``open(run_dir / name)`` work as they would on it (what a callback factory receives as
    ``run_dir=``, see docs/plugins.md).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.path / other

    spec_file = property(lambda self: self.path / "spec.yaml")
    metrics_file = property(lambda self: self.path / "metrics.csv")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    summary_file = property(lambda self: self.path / "summary.json")
    figures_dir = property(lambda self: self.path / "figures")
    changes_file = property(lambda self: self.path / "changes.jsonl")
    origin_file = property(lambda self: self.path / "origin.json")

    # -- creation ------------------------------------------------------------------------------
    def create(self, spec_yaml: str) -> None:
        """Start a new run here; refuses a directory that already holds a checkpointed run.

        A run that never wrote a checkpoint is started again from scratch: its spec, metrics
        and records are replaced (nothing of it could be resumed).
        """
        self.ensure_new()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.remove_temporaries()
        for stale in (self.metrics_file, self.summary_file, self.changes_file, self.origin_file):
            stale.unlink(missing_ok=True)
        atomic_write_text(self.spec_file, spec_yaml)
        atomic_write_text(self.path / "environment.json", json.dumps(environment(), indent=2))

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

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporaries of interrupted atomic writes; returns what was removed."""
        removed = []
        for directory in (self.path, self.checkpoint_dir):
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if _TEMPORARY.match(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    def require(self) -> None:
        if not self.spec_file.is_file():
            raise HierotError(f"{self.path} is not a run directory (no spec.yaml in it)")

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        return self.checkpoint_files()

    def checkpoint_files(self) -> list[Path]:
        """Checkpoint files (``step-*.pt``, intact or not), oldest first."""
        found = [p for p in self.checkpoint_dir.glob("step-*.pt") if _STEP_FILE.match(p.name)]
        return sorted(found, key=_step_of)

    @property
    def best_file(self) -> Path:
        """``checkpoints/best.pt``: the best held-out evaluation so far (``train.eval_every``)."""
        return self.checkpoint_dir / BEST

    def checkpoint(self, step: int | str | None = None) -> Path:
        """The checkpoint of ``step`` (default: the last one; ``"best"``: ``best.pt``)."""
        found = self.checkpoints()
        if step == BEST_NAME:
            if not self.best_file.is_file():
                steps = ", ".join(str(_step_of(p)) for p in found) or "none"
                raise HierotError(
                    f"{self.checkpoint_dir} holds no {BEST}: it is written only when the spec sets "
                    f"train.eval_every; checkpoints by step: {steps}")
            return self.best_file
        if not found:
            raise HierotError(f"{self.checkpoint_dir} holds no checkpoint yet")
        if step is None:
            return found[-1]
        path = self.checkpoint_dir / f"step-{step:08d}.pt"
        if path not in found:
            steps = ", ".join(str(_step_of(p)) for p in found)
            raise HierotError(f"no checkpoint of step {step} in {self.checkpoint_dir}; "
                              f"steps: {steps}")
        return path

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        path = self.checkpoint_dir / f"step-{step:08d}.pt"
        atomic_torch_save(state, path)
        for old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, step: int | str | None = None,
                        map_location: Any = "cpu") -> dict[str, Any]:
        """The checkpoint of ``step`` (default: the last; ``"best"``: ``best.pt``);
        :class:`CheckpointError` names a bad file, what is wrong with it, and the other steps to
        choose from."""
        path = self.checkpoint(step)
        try:
            return read_checkpoint(path, map_location)
        except CheckpointError as exc:
            others = [str(_step_of(p)) for p in self.checkpoint_files() if p != path]
            hint = (f"; other checkpoints: steps {', '.join(others)} (--checkpoint STEP)"
                    if others else "")
            raise CheckpointError(f"{exc}{hint}") from None

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, for messages."""
        try:
            return str(Path(path).relative_to(self.path))
        except ValueError:
            return str(path)

    # -- metrics -------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, float]]:
        """The rows of metrics.csv (a last line cut short by a crash is left out); a damaged
        file raises :class:`~hierot.training.metrics_csv.MetricsFileError` naming it."""
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


def _cell(value: float) -> int | float:
    """A number as MetricsWriter wrote it (``step`` and other whole numbers without ``.0``)."""
    return int(value) if value.is_integer() else value


class MetricsWriter:
    """Appends rows to metrics.csv, flushing each so a crash loses nothing logged.

    A row with columns the header lacks (held-out ``val_*`` terms first logged after some
    training rows) rewrites the file atomically with the header extended; earlier rows leave
    those cells empty.
    """

    def __init__(self, path: Path):
        self.path = path
        self._file: TextIO | None = None
        self._writer: csv.DictWriter | None = None

    def write(self, row: dict[str, float]) -> None:
        file, writer = self._open(row)
        new = [k for k in row if k not in writer.fieldnames]
        if new:
            self._extend_header(new, writer.fieldnames)
            file, writer = self._open(row)
        try:
            writer.writerow(row)
            file.flush()
        except OSError as error:
            _name(error, self.path)
            raise

    def _open(self, row: dict[str, float]) -> tuple[TextIO, csv.DictWriter]:
        """The open file and its writer (opened with the file's header, or ``row``'s keys)."""
        if self._file is None or self._writer is None:
            exists = self.path.exists() and self.path.stat().st_size > 0
            if exists:
                with self.path.open(newline="") as f:
                    fields = next(csv.reader(f))
            else:
                fields = list(row)
            self._file = self.path.open("a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore")
            if not exists:
                self._writer.writeheader()
        return self._file, self._writer

    def _extend_header(self, new: list[str], old: Collection[str]) -> None:
        fields = [*old, *new]
        self.close()
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        with atomic_open(self.path) as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._writer = None, None


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


def read_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load one checkpoint file with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong: empty, truncated or corrupt, not a checkpoint (it
        holds objects other than tensors and numbers, which are never unpickled), or not a
        mapping with a step and model weights.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror})") from None
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), e.g. from a crash or a full disk")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's message would suggest weights_only=False: running the file's code. Never.
        raise CheckpointError(
            f"{path}: not a hierot checkpoint (it holds Python objects other than tensors, "
            f"numbers and strings, which hierot does not unpickle)"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in first:
            first = type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt ({size} bytes; {first})") from None
    if (not isinstance(state, dict) or not isinstance(state.get("model"), dict)
            or "step" not in state):
        raise CheckpointError(f"{path}: not a hierot checkpoint (no step and model weights in it)")
    return state


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
