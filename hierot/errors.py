"""User-facing errors.

Every mistake a user can make (a wrong spec field, an unknown component name, a missing data
set) raises a :class:`HierotError`. It is also a :class:`ValueError`, so code that catches
``ValueError`` keeps working. The CLI turns these into a message and exit code 2, never a
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HierotError(ValueError):
    """Base class of every error caused by user input."""


class UnknownNameError(HierotError, KeyError):
    """A component, preset or data set name that no registry holds."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(unknown_name_message(kind, name, self.valid))

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(HierotError):
    """A second registration under a name that is already taken."""


class SpecError(HierotError):
    """A spec that failed validation; ``lines`` holds one ``path: message`` per problem.

    ``more`` counts further problems that were found but not formatted (a spec with thousands
    of errors is reported by its first :data:`MAX_REPORTED` and a count).
    """

    def __init__(self, lines: list[str], source: str | None = None, more: int = 0):
        self.lines, self.source, self.more = lines, source, more
        head = f"invalid spec {source}" if source else "invalid spec"
        tail = [f"  ... and {more} more problem(s)"] if more else []
        super().__init__(head + ":\n" + "\n".join([f"  {line}" for line in lines] + tail))


MAX_REPORTED = 20
"""How many problems of one spec are spelled out; the rest are counted."""


class DataNotFoundError(HierotError):
    """A data set whose files are not where we looked."""


class NonFiniteLossError(HierotError):
    """Training produced a NaN or infinite objective term."""


class CheckpointError(HierotError):
    """A checkpoint file that cannot be used: empty, truncated, corrupt, foreign or non-finite."""


class RunChangedError(HierotError):
    """A resume whose spec differs from the run's in a field that would make another experiment."""


class PluginError(HierotError):
    """A plug-in that cannot be loaded or that breaks a registry rule."""


def unknown_name_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """``unknown divergence 'mmdd'; did you mean 'mmd'? Valid: mmd, sinkhorn``.

    Without a close match: ``unknown divergence 'xyz'. Valid: mmd, sinkhorn``.
    """
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
    choices = ", ".join(valid) if valid else "(none registered)"
    return f"unknown {kind} {name!r}{hint} Valid: {choices}"

__all__ = ["MAX_REPORTED", "CheckpointError", "DataNotFoundError", "DuplicateNameError",
           "HierotError", "NonFiniteLossError", "PluginError", "RunChangedError", "SpecError",
           "UnknownNameError", "unknown_name_message"]
