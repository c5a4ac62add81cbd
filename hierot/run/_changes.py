"""What a resume may change, and ``RUN/changes.jsonl``, the record of what it changed.

A resume continues the *same* experiment: :func:`spec_changes` compares the run's resolved spec
with the new one before anything is written, and :func:`check_resume` allows only the fields of
:data:`RESUMABLE` (the budget, the logging and checkpoint cadence, the progress bar) to change;
anything else is refused with every changed field listed and the way to branch instead
(``hierot train NEW.yaml --init-from RUN``, see :meth:`hierot.run.Run.init_weights`). Allowed
changes are appended to ``RUN/changes.jsonl`` with the step at which they took effect.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hierot.errors import RunChangedError
from hierot.run._layout import SPEC
from hierot.spec.schema import Spec

RESUMABLE = (
    "train.steps",
    "train.epochs",
    "train.log_every",
    "train.checkpoint_every",
    "train.progress",
    "train.eval_every",
    "train.skip_update",
    "train.ema.batchnorm",
    "train.ema.batchnorm_batches",
    "device",
)
"""Fields a resume may change: the budget, the logging, checkpoint and evaluation cadences, the
progress bar, the skipped-update policy (to go on past ``max_consecutive`` skips), how the
average's BatchNorm statistics are estimated (training is the same either way) and the device
(``--device`` on another machine), none of which makes another experiment."""
_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One field whose value differs between two specs (``_ABSENT`` where it is missing)."""

    path: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    @property
    def resumable(self) -> bool:
        return any(self.path == f or self.path.startswith(f + ".") for f in RESUMABLE)


def _show(value: Any, width: int = 60) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 3] + "..."


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            where = f"{path}.{key}" if path else key
            _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), where, out)
    elif (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)
          and any(isinstance(v, (dict, list)) for v in [*old, *new])):  # layers, penalties
        for i, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, f"{path}.{i}", out)
    elif old != new:
        out.append(Change(path or "<spec>", old, new))


def spec_changes(old: Spec, new: Spec) -> list[Change]:
    """Every field of the resolved specs that differs, as ``path: old -> new``."""
    changes: list[Change] = []
    _diff(old.model_dump(mode="json"), new.model_dump(mode="json"), "", changes)
    return changes


def check_resume(run: Path, old: Spec, new: Spec) -> list[Change]:
    """The changes a resume of the run directory ``run`` makes; :class:`RunChangedError` if any
    is not resumable.

    Nothing is written either way.
    """
    changes = spec_changes(old, new)
    refused = [c for c in changes if not c.resumable]
    if refused:
        lines = "\n".join(f"  {c}" for c in refused)
        raise RunChangedError(
            f"--resume {run}: the changes would make another experiment, which a resume "
            f"may not:\n{lines}\n"
            f"A resume may change only {', '.join(RESUMABLE)}. To train the changed spec "
            f"starting from this run's weights, branch it into a new run directory:\n"
            f"  hierot show {run / SPEC} > NEW.yaml   # then edit NEW.yaml\n"
            f"  hierot train NEW.yaml --init-from {run} --out NEW_RUN\n"
            f"Nothing in {run} was changed."
        )
    return changes


def record(file: Path, step: int, changes: Iterable[Change] = (), **notes: Any) -> None:
    """Append one line to ``file`` (``RUN/changes.jsonl``): the step, the time, the changes and
    notes."""
    entry = {
        "step": step,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "changes": {c.path: [None if c.old is _ABSENT else c.old,
                             None if c.new is _ABSENT else c.new] for c in changes},
        **notes,
    }
    with open(file, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_changes(file: Path) -> list[dict[str, Any]]:
    """The entries of ``file`` (``RUN/changes.jsonl``; a line cut short by a crash is skipped)."""
    if not file.exists():
        return []
    entries = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
