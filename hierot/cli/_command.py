"""The sub-command table of ``hierot``: each sub-command module registers its functions here.

A sub-command is ``run(args) -> exit status``; ``arguments``, given to :func:`command` (or, as
plug-ins of hierot 0.1 did, an ``arguments`` attribute of ``run``), adds its arguments to its
sub-parser. Nothing heavy is imported here or by the sub-command modules at
import time (each command imports what it needs), so ``hierot --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]

COMMANDS: dict[str, tuple[AddArguments, Command, str]] = {}
"""Sub-command name -> (add its arguments, run it, one line of help), in registration order."""


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """What a sub-command without arguments adds to its parser: nothing."""


def command(name: str, help: str, *,
            arguments: AddArguments | None = None) -> Callable[[Command], Command]:
    """Register ``run(args)`` as a sub-command whose ``arguments(parser)`` adds its arguments
    (default: ``run``'s ``arguments`` attribute, if any)."""

    def decorator(run: Command) -> Command:
        add = arguments if arguments is not None else getattr(run, "arguments", _no_arguments)
        COMMANDS[name] = (add, run, help)
        return run

    return decorator


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """``--set KEY.PATH=VALUE`` (repeatable), as ``train``, ``validate`` and others take it."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a spec field, value parsed as YAML (repeatable), e.g. train.steps=100; "
             "a new name (divergence.name=sinkhorn) drops the old component's options",
    )


def add_shorthands(parser: argparse.ArgumentParser) -> None:
    """``--steps``, ``--device``, ``--seed``: shorthands for ``--set``, applied after it."""
    parser.add_argument("--steps", type=int, metavar="N",
                        help="shorthand for --set train.steps=N (and no train.epochs)")
    parser.add_argument("--device", metavar="D",
                        help="shorthand for --set device=D (auto, cpu, cuda, cuda:1, mps)")
    parser.add_argument("--seed", type=int, metavar="S", help="shorthand for --set seed=S")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides followed by those of the shorthands (which so win over ``--set``)."""
    found = list(args.overrides)
    if getattr(args, "steps", None) is not None:
        found += [f"train.steps={args.steps}", "train.epochs=null"]
    if getattr(args, "device", None) is not None:
        found.append(f"device={args.device}")
    if getattr(args, "seed", None) is not None:
        found.append(f"seed={args.seed}")
    return found
