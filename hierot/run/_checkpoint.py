"""The checkpoint format: what a checkpoint holds, and reading one back safely.

A checkpoint (``RUN/checkpoints/step-*.pt``, ``best.pt``) is a mapping of tensors, numbers and
strings only, written atomically (:func:`~hierot.run.atomic_torch_save`) and read with
``torch.load(path, weights_only=True)``: nothing in it is ever unpickled as code. It holds at
least :data:`REQUIRED_KEYS`; :data:`CHECKPOINT_FORMAT` is the version of its layout, checked on
every load. One that cannot be read is reported by name with what is wrong
(:class:`~hierot.errors.CheckpointError`).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierot.errors import CheckpointError
from hierot.run._layout import step_of

CHECKPOINT_FORMAT = 1
"""The version of the checkpoint's layout (what :data:`REQUIRED_KEYS` and the trainer's state
hold); a checkpoint of another format is refused by name."""
REQUIRED_KEYS = ("format", "step", "model", "optimizer", "batches", "rng_cpu")
"""What every checkpoint written by :class:`hierot.training.trainer.Trainer` holds."""


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



def _tensors(value: Any, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{prefix}.{i}")


def check_state(state: dict[str, Any], path: Path,
                expected_format: int = CHECKPOINT_FORMAT) -> None:
    """A checkpoint written by the trainer, for the step its name says, with finite values."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a hierot training checkpoint (no {', '.join(missing)})")
    if state["format"] != expected_format:
        raise CheckpointError(f"{path}: checkpoint format {state['format']!r}, "
                              f"expected {expected_format}")
    name_step = step_of(path)
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
