"""Atomic writes: a temporary file beside the target, renamed over it only once complete.

A crash or a full disk mid-write leaves the previous file intact and the temporary
(``.NAME.XXXXXXXX``) removed; the error names the file being written. Files get the mode
``open()`` would give them (``0666`` less the user's umask), not ``mkstemp``'s ``0600``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class atomic_open:  # lower case: used like open()
    """``with atomic_open(path) as f``: write a temporary file, rename it over ``path`` on
    success."""

    def __init__(self, path: Path, mode: str = "w"):
        self.path, self.mode = Path(path), mode

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
        self.file = os.fdopen(fd, self.mode, newline="" if "b" not in self.mode else None)
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        except BaseException as error:  # e.g. ENOSPC on flush: the old file stays,
            # the temporary goes
            _discard(self.file, self.tmp)
            _name(error, self.path)
            raise
        _name(exc, self.path)
        if exc_type is not None:
            _discard(self.file, self.tmp)
        return False


def _name(error: BaseException | None, path: Path) -> None:
    """Give a write error without a file name (ENOSPC, EFBIG) the name of the file written."""
    if isinstance(error, OSError) and error.filename is None:
        error.filename = str(path)


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _discard(file, tmp: str) -> None:
    try:
        file.close()
    except OSError:
        pass
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as exc:  # torch's writer can hide a failed write (ENOSPC)
            # behind its own
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise
