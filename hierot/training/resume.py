"""Resuming and branching runs without ever damaging them.

A resume continues the *same* experiment: :func:`spec_changes` compares the run's resolved spec
with the new one before anything is written, and :func:`check_resume` allows only the fields of
:data:`RESUMABLE` (the budget, the logging and checkpoint cadence, the progress bar) to change;
anything else is refused with every changed field listed and the way to branch instead
(``hierot train NEW.yaml --init-from RUN``, see :func:`init_from`). Allowed changes are appended
to ``RUN/changes.jsonl`` with the step at which they took effect.

:func:`restore` loads the newest *intact* checkpoint: one that is empty, truncated, corrupt,
foreign (another architecture or optimiser) or non-finite is reported by file name and the one
before it is tried.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierot.errors import CheckpointError, HierotError, RunChangedError
from hierot.spec.schema import Spec
from hierot.training.rundir import RunDir, read_checkpoint

RESUMABLE = (
    "train.steps",
    "train.epochs",
    "train.log_every",
    "train.checkpoint_every",
    "train.progress",
    "train.eval_every",
    "train.skip_update",
    "device",
)
"""Fields a resume may change: the budget, the logging, checkpoint and evaluation cadences, the
progress bar, the skipped-update policy (to go on past ``max_consecutive`` skips) and the device
(``--device`` on another machine), none of which makes another experiment."""
_ABSENT = object()
REQUIRED_KEYS = ("format", "step", "model", "optimizer", "batches", "rng_cpu")
"""What every checkpoint written by :class:`hierot.training.trainer.Trainer` holds."""


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


def check_resume(run: RunDir, old: Spec, new: Spec) -> list[Change]:
    """The changes a resume of ``run`` makes; :class:`RunChangedError` if any is not resumable.

    Nothing is written either way.
    """
    changes = spec_changes(old, new)
    refused = [c for c in changes if not c.resumable]
    if refused:
        lines = "\n".join(f"  {c}" for c in refused)
        raise RunChangedError(
            f"--resume {run.path}: the changes would make another experiment, which a resume "
            f"may not:\n{lines}\n"
            f"A resume may change only {', '.join(RESUMABLE)}. To train the changed spec "
            f"starting from this run's weights, branch it into a new run directory:\n"
            f"  hierot show {run.spec_file} > NEW.yaml   # then edit NEW.yaml\n"
            f"  hierot train NEW.yaml --init-from {run.path} --out NEW_RUN\n"
            f"Nothing in {run.path} was changed."
        )
    return changes


def record(run: RunDir, step: int, changes: Iterable[Change] = (), **notes: Any) -> None:
    """Append one line to ``RUN/changes.jsonl``: the step, the time, the changes and notes."""
    entry = {
        "step": step,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "changes": {c.path: [None if c.old is _ABSENT else c.old,
                             None if c.new is _ABSENT else c.new] for c in changes},
        **notes,
    }
    with open(run.changes_file, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_changes(run: RunDir) -> list[dict[str, Any]]:
    """The entries of ``RUN/changes.jsonl`` (a line cut short by a crash is skipped)."""
    if not run.changes_file.exists():
        return []
    entries = []
    for line in run.changes_file.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


# -- checkpoints ---------------------------------------------------------------------------------
def _tensors(value: Any, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{prefix}.{i}")


def check_state(state: dict[str, Any], path: Path, expected_format: int) -> None:
    """A checkpoint written by the trainer, for the step its name says, with finite values."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a hierot training checkpoint (no {', '.join(missing)})")
    if state["format"] != expected_format:
        raise CheckpointError(f"{path}: checkpoint format {state['format']!r}, "
                              f"expected {expected_format}")
    name_step = int(path.name.removeprefix("step-").removesuffix(".pt"))
    if state["step"] != name_step:
        raise CheckpointError(f"{path}: holds step {state['step']!r}, its name says {name_step}")
    for name, tensor in _tensors({"model": state["model"], "optimizer": state["optimizer"]}, ""):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: {name.lstrip('.')} holds non-finite values")


def check_architecture(model: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights whose names or shapes differ from ``model``'s, naming them."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and tuple(getattr(weights[k], "shape", ())) != tuple(v.shape)
    ]
    if missing or extra or shapes:

        def some(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")

        parts = ([f"missing in {source}: {some(missing)}"] if missing else []) + (
            [f"not in this model: {some(extra)}"] if extra else []) + (
            [f"other shapes (checkpoint vs model): {some(shapes)}"] if shapes else [])
        raise CheckpointError(
            f"{source}: its weights do not fit this architecture; " + "; ".join(parts)
        )


def restore(trainer: Any, run: RunDir, expected_format: int) -> tuple[Path | None, list[str]]:
    """Load the newest intact checkpoint of ``run`` into ``trainer`` (reads, never writes).

    Returns the checkpoint used (``None`` when the run has none: it starts again from step 0)
    and one message per newer checkpoint that was skipped, naming the file and what is wrong.

    Raises
    ------
    CheckpointError
        Checkpoints exist but none is intact (each is listed).
    """
    problems: list[str] = []
    files = run.checkpoint_files()
    for path in reversed(files):
        try:
            state = read_checkpoint(path, trainer.runtime.device)
            check_state(state, path, expected_format)
            check_architecture(trainer.model, state["model"], str(path))
            try:
                trainer.load_state(state)
            except HierotError:
                raise  # e.g. another world size: true of every checkpoint, no fallback
            except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
                raise CheckpointError(
                    f"{path}: does not fit this run's optimiser or state "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            return path, problems
        except CheckpointError as exc:
            problems.append(str(exc))
    if files:
        listed = "\n".join(f"  {p}" for p in problems)
        raise CheckpointError(
            f"--resume {run.path}: no intact checkpoint to resume from:\n{listed}\n"
            f"Nothing was changed. To train it again from step 0, move these files away, or "
            f"train the spec into a new --out."
        )
    return None, problems


def init_from(model: nn.Module, source: str | Path, expected_format: int) -> tuple[dict, list[str]]:
    """Load the model weights of the newest intact checkpoint of run ``source`` into ``model``.

    Only the weights (and BatchNorm statistics) are taken: the optimiser, data order and step
    start afresh. Returns the record kept as the new run's ``origin.json`` and the messages of
    skipped checkpoints.

    Raises
    ------
    CheckpointError
        ``source`` holds no intact checkpoint, or its weights do not fit ``model`` (the
        mismatching parameters are named).
    """
    run = RunDir(source)
    run.require()
    problems: list[str] = []
    for path in reversed(run.checkpoint_files()):
        try:
            state = read_checkpoint(path)
            check_state(state, path, expected_format)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        check_architecture(model, state["model"], f"--init-from {path}")
        model.load_state_dict(state["model"])
        origin = {
            "init_from": str(run.path.resolve()),
            "checkpoint": run.relative(path),
            "step": int(state["step"]),
            "skipped": problems,
        }
        return origin, problems
    detail = "".join(f"\n  {p}" for p in problems)
    raise CheckpointError(f"--init-from {run.path}: no intact checkpoint to start from{detail}")
