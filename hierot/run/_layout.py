"""The run directory's file names: the one place that knows them (what each file holds: the
package's docstring, :mod:`hierot.run`)."""

from __future__ import annotations

import re
from pathlib import Path

SPEC = "spec.yaml"
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"
SUMMARY = "summary.json"
ENVIRONMENT = "environment.json"
CHANGES = "changes.jsonl"
ORIGIN = "origin.json"
EVAL = "eval.json"
HELDOUT = "heldout.json"
REPORT = "report.md"
FIGURES = "figures"
BEST_NAME = "best"
BEST = f"{BEST_NAME}.pt"

_STEP_FILE = re.compile(r"step-(\d+)\.pt$")
_WRITTEN = (r"step-\d+\.pt", re.escape(BEST), *(re.escape(name) for name in (
    SPEC, METRICS, SUMMARY, ENVIRONMENT, ORIGIN, EVAL, REPORT)))
TEMPORARY = re.compile(rf"^\.({'|'.join(_WRITTEN)})\.[A-Za-z0-9_]+$")
"""Names :class:`~hierot.run.atomic_open` gives its temporaries (``.NAME.XXXXXXXX``) here."""


def step_file(step: int) -> str:
    """A checkpoint's file name: ``step-00000100.pt`` for step 100."""
    return f"step-{step:08d}.pt"


def is_step_file(name: str) -> bool:
    return _STEP_FILE.match(name) is not None


def step_of(path: Path) -> int:
    """The training step in a checkpoint's file name (``step-00000100.pt`` -> 100)."""
    match = _STEP_FILE.search(Path(path).name)
    if match is None:
        raise ValueError(f"{Path(path).name} is not a checkpoint's file name (step-NNNNNNNN.pt)")
    return int(match.group(1))
