"""The run directory: everything needed to understand and reproduce a run.

::

    RUN/spec.yaml              the resolved spec (every default filled in)
    RUN/metrics.csv            every objective term per logged step, plus wall time
    RUN/checkpoints/step-*.pt  model, optimiser, data order and RNG state (atomic writes)
    RUN/summary.json           final numbers, written when training ends
    RUN/environment.json       versions, device, plug-ins

Checkpoints are written to a temporary file and renamed into place, so a crash mid-write leaves
the previous checkpoint intact. They hold tensors, numbers and strings only and load with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from hierot.errors import HierotError

_STEP_FILE = re.compile(r"step-(\d+)\.pt$")


def _step_of(path: Path) -> int:
    """The training step in a checkpoint's file name (``step-00000100.pt`` -> 100)."""
    return int(_STEP_FILE.search(path.name).group(1))


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    spec_file = property(lambda self: self.path / "spec.yaml")
    metrics_file = property(lambda self: self.path / "metrics.csv")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    summary_file = property(lambda self: self.path / "summary.json")
    figures_dir = property(lambda self: self.path / "figures")

    # -- creation ------------------------------------------------------------------------------
    def create(self, spec_yaml: str) -> None:
        """Start a new run here; refuses a directory that already holds a run."""
        self.ensure_new()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.spec_file, spec_yaml)
        atomic_write_text(self.path / "environment.json", json.dumps(environment(), indent=2))

    def ensure_new(self) -> None:
        """Refuse to start a run over an existing one (nothing already written is touched)."""
        if self.spec_file.exists():
            raise HierotError(
                f"--out {self.path}: already holds a run (spec.yaml); resume it with "
                f"`hierot train --resume {self.path}` or choose another --out"
            )

    def require(self) -> None:
        if not self.spec_file.is_file():
            raise HierotError(f"{self.path} is not a run directory (no spec.yaml in it)")

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        found = [p for p in self.checkpoint_dir.glob("step-*.pt") if _STEP_FILE.search(p.name)]
        return sorted(found, key=_step_of)

    def checkpoint(self, step: int | None = None) -> Path:
        """The checkpoint of ``step`` (default: the last one)."""
        found = self.checkpoints()
        if not found:
            raise HierotError(f"{self.checkpoint_dir} holds no checkpoint yet")
        if step is None:
            return found[-1]
        path = self.checkpoint_dir / f"step-{step:08d}.pt"
        if path not in found:
            steps = ", ".join(str(_step_of(p)) for p in found)
            raise HierotError(f"no checkpoint of step {step} in {self.checkpoint_dir}; steps: {steps}")
        return path

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        path = self.checkpoint_dir / f"step-{step:08d}.pt"
        atomic_torch_save(state, path)
        for old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, step: int | None = None, map_location: Any = "cpu") -> dict[str, Any]:
        return torch.load(self.checkpoint(step), map_location=map_location, weights_only=True)

    # -- metrics -------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, float]]:
        if not self.metrics_file.exists():
            return []
        with self.metrics_file.open(newline="") as f:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows logged after ``after_step`` (they are redone when a run resumes)."""
        if not self.metrics_file.exists():
            return
        with self.metrics_file.open(newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], [r for r in reader if int(float(r["step"])) <= after_step]
        with atomic_open(self.metrics_file) as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


class MetricsWriter:
    """Appends rows to metrics.csv, flushing each so a crash loses nothing logged.

    A row with columns the header lacks (held-out ``val_*`` terms first logged after some
    training rows) rewrites the file atomically with the header extended; earlier rows leave
    those cells empty.
    """

    def __init__(self, path: Path):
        self.path = path
        self._file = None
        self._writer: csv.DictWriter | None = None

    def write(self, row: dict[str, float]) -> None:
        self._open(row)
        new = [k for k in row if k not in self._writer.fieldnames]
        if new:
            self._extend_header(new)
            self._open(row)
        self._writer.writerow(row)
        self._file.flush()

    def _open(self, row: dict[str, float]) -> None:
        if self._writer is None:
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

    def _extend_header(self, new: list[str]) -> None:
        fields = [*self._writer.fieldnames, *new]
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


# -- atomic writes -------------------------------------------------------------------------------
class atomic_open:  # noqa: N801 - used like open()
    """``with atomic_open(path) as f``: write a temporary file, rename it over ``path`` on success."""

    def __init__(self, path: Path, mode: str = "w"):
        self.path, self.mode = Path(path), mode

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        self.file = os.fdopen(fd, self.mode, newline="" if "b" not in self.mode else None)
        return self.file

    def __exit__(self, exc_type, exc, tb):
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
        return False


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


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
