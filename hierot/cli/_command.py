"""The sub-command table of ``hierot``: each sub-command module registers its functions here.

A sub-command is ``run(args) -> exit status``; its ``arguments`` attribute, when present, adds its
arguments to its sub-parser. Nothing heavy is imported here or by the sub-command modules at
import time (each command imports what it needs), so ``hierot --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]

COMMANDS: dict[str, tuple[AddArguments, Command, str]] = {}
"""Sub-command name -> (add its arguments, run it, one line of help), in registration order."""


def command(name: str, help: str) -> Callable[[Command], Command]:
    """Register ``run(args)`` as a sub-command; ``add_arguments`` is its ``arguments`` attribute."""

    def decorator(run: Command) -> Command:
        COMMANDS[name] = (getattr(run, "arguments", lambda p: None), run, help)
        return run

    return decorator


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """``--set KEY.PATH=VALUE`` (repeatable), as ``train``, ``validate`` and others take it."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a spec field, value parsed as YAML (repeatable), e.g. train.steps=100",
    )
