"""The ``hierot`` command line. Each sub-command is one function; user errors exit with code 2.

================ ==================================================================================
``_command``     the sub-command table and the ``@command`` decorator
``commands``     ``train``, ``validate``, ``show``, ``list``
``evaluation``   ``eval``, ``plot``, ``sample``, ``report`` (calling :mod:`hierot.evaluation`)
================ ==================================================================================

The command line sits on top: it imports the API and the evaluation package (inside each
command, so ``hierot --help`` imports neither torch nor matplotlib), and nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hierot.cli import commands, evaluation  # noqa: F401  (importing them registers the commands)
# ``command`` is re-exported for code outside hierot; a sub-command module of hierot imports it
# from hierot.cli._command (importing hierot.cli from one would be a loop)
from hierot.cli._command import COMMANDS, command
from hierot.errors import HierotError

__all__ = ["COMMANDS", "command", "main", "make_parser"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hierot", description="Hierarchical optimal-transport autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run, help) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help, description=help)
        add_arguments(sub_parser)
        sub_parser.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except HierotError as exc:
        print(f"hierot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only or full disk, an --out under a file, ...
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        reason = exc.strerror or str(exc)
        print(f"hierot {args.command}: error: {where + ': ' if where else ''}{reason}; "
              f"everything written before is intact", file=sys.stderr)
        return 2
