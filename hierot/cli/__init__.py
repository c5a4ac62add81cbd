"""The ``hierot`` command line. Each sub-command is one function; user errors exit with code 2.

================ ==================================================================================
``_command``     the sub-command table and the ``@command`` decorator
``_commands``    ``train``, ``validate``, ``show``, ``list``
``_evaluation``  ``eval``, ``plot``, ``sample``, ``report``, ``compare`` (calling the API)
``_sweep``       ``sweep`` (calling :mod:`hierot.sweeps`)
================ ==================================================================================

The command line sits on top: it imports the API and the evaluation package (inside each
command, so ``hierot --help`` imports neither torch nor matplotlib), and nothing imports it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from hierot.cli import _commands, _evaluation, _sweep  # noqa: F401  (importing registers them)

# ``command`` is re-exported for code outside hierot; a sub-command module of hierot imports it
# from hierot.cli._command (importing hierot.cli from one would be a loop)
from hierot.cli._command import COMMANDS, command
from hierot.errors import HierotError

__all__ = ["COMMANDS", "command", "main", "make_parser", "version_line"]


def version_line() -> str:
    """``hierot 0.2.0 (torch 2.14.1, python 3.11.7)``: hierot's version is that of the code that
    runs (``hierot._version``; an editable install's metadata can lag behind it), torch's is
    read from its metadata without importing torch."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from hierot._version import __version__

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return (f"hierot {__version__} (torch {installed('torch')}, "
            f"python {platform.python_version()})")


def unknown_command(argv: Sequence[str]) -> str | None:
    """The message for a first argument that is no sub-command (``trian``), else ``None``."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None or first in COMMANDS:
        return None
    from hierot.errors import unknown_name_message

    message = unknown_name_message("command", first, COMMANDS)
    close = difflib.get_close_matches(first, list(COMMANDS), n=1, cutoff=0.5)
    return message + (f"\n(run `hierot {close[0]} --help`)" if close else "\n(run `hierot --help`)")


def _short_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line, ``hierot: warning: ...`` (no source line under it)."""
    return f"hierot: warning: {message}\n"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hierot",
                                     description="Hierarchical optimal-transport autoencoders.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the versions of hierot, torch and python, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run, help) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help, description=help)
        add_arguments(sub_parser)
        sub_parser.set_defaults(run=run)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = unknown_command(argv)
    if problem:
        print(f"hierot: error: {problem}", file=sys.stderr)
        return 2
    args = make_parser().parse_args(argv)
    formatwarning, warnings.formatwarning = warnings.formatwarning, _short_warning
    try:
        return args.run(args)
    except HierotError as exc:
        print(f"hierot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`hierot list | head`): stop quietly
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:  # a read-only or full disk, an --out under a file, ...
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        reason = exc.strerror or str(exc)
        print(f"hierot {args.command}: error: {where + ': ' if where else ''}{reason}; "
              f"everything written before is intact", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatwarning
