"""The ``hierot`` command line. Each sub-command is one function; user errors exit with code 2.

::

    hierot train SPEC_OR_PRESET [--set a.b=value ...] [--steps N] [--device D] [--seed S]
                 [--out DIR]
    hierot train --resume DIR [--steps N]
    hierot validate SPEC_OR_PRESET [--set ...] [--steps N] [--device D] [--seed S]
    hierot show PRESET
    hierot list [KIND]
    hierot --version

Nothing heavy (torch, matplotlib) is imported at module level: ``--help``, ``--version`` and
argument errors answer at once; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from collections.abc import Callable, Sequence

from hierot.errors import HierotError

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command, str]] = {}


def command(name: str, help: str):
    """Register ``run(args)`` as a sub-command; ``add_arguments`` is its ``arguments`` attribute."""

    def decorator(run: Command) -> Command:
        COMMANDS[name] = (getattr(run, "arguments", lambda p: None), run, help)
        return run

    return decorator


def _overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a spec field, value parsed as YAML (repeatable), e.g. train.steps=100; "
             "a new name (divergence.name=sinkhorn) drops the old component's options",
    )


def _shorthands(parser: argparse.ArgumentParser) -> None:
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


# -- train -------------------------------------------------------------------------------------
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", help="a spec YAML file or a preset name")
    parser.add_argument("--out", help="run directory to create (default: runs/NAME-TIME)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    _overrides(parser)
    _shorthands(parser)


def train(args: argparse.Namespace) -> int:
    from hierot.api import default_run_dir, fit
    from hierot.rundir import RunDir
    from hierot.trainer import summary_table

    if (args.spec is None) == (args.resume is None):
        raise HierotError("train: give a SPEC_OR_PRESET, or --resume DIR (not both)")
    if args.resume and args.seed is not None:
        raise HierotError("train: --seed does not apply to --resume (the run continues its own "
                          "random numbers); start a new run to change the seed")
    out = args.resume or args.out or default_run_dir(args.spec)
    overrides = overrides_of(args)
    try:
        if args.resume:
            result = fit(resume=args.resume, overrides=overrides)
        else:
            result = fit(args.spec, out=out, overrides=overrides)
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with: hierot train --resume {out}", file=sys.stderr)
        return 130
    if result.run_dir is not None:  # the main process
        print(summary_table(RunDir(out)))
    return 0


train.arguments = _train_arguments
command("train", "train a hierarchy from a spec or preset")(train)


# -- validate, show, list -------------------------------------------------------------------------
def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="a spec YAML file or a preset name")
    _overrides(parser)
    _shorthands(parser)


def validate(args: argparse.Namespace) -> int:
    from hierot.loading import load_spec

    spec = load_spec(args.spec, overrides_of(args))
    reconstruction, match = spec.resolved_weights()
    print(f"{args.spec}: valid ({spec.objective} objective, {len(spec.layers)} latent layers "
          f"{[list(l.latent_shape) for l in spec.layers]}, divergence {spec.divergence.name})")
    print("weights of the reconstruction terms:", ", ".join(f"{w:.4g}" for w in reconstruction),
          f"| divergence: {match:.4g}")
    return 0


validate.arguments = _spec_arguments
command("validate", "check a spec without building anything")(validate)


def show(args: argparse.Namespace) -> int:
    from hierot.loading import dump_spec, load_spec, read_text

    print(dump_spec(load_spec(args.spec)) if args.resolved else read_text(args.spec)[0], end="")
    return 0


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="a preset name (or a spec file)")
    parser.add_argument("--resolved", action="store_true", help="print with every default filled in")


show.arguments = _show_arguments
command("show", "print a preset's YAML")(show)


def list_components(args: argparse.Namespace) -> int:
    from hierot.registry import ALL

    kinds = [args.kind] if args.kind else list(ALL)
    for kind in kinds:
        if kind not in ALL:
            from hierot.errors import unknown_name_message

            raise HierotError(unknown_name_message("kind", kind, ALL))
        registry = ALL[kind]
        print(f"{kind}:")
        for entry in registry.entries():
            source = "" if entry.source == "hierot" else f"  [{entry.source}]"
            print(f"  {entry.name:<22}{entry.summary}{source}")
        for problem in registry.plugin_errors:
            print(f"  ! {problem}")
    return 0


list_components.arguments = lambda p: p.add_argument("kind", nargs="?", help="networks, costs, ...")
command("list", "list registered components (and plug-ins, with their package)")(list_components)


import hierot.evaluation.commands  # noqa: E402, F401  (registers eval, plot, sample, report)


# -- entry point ---------------------------------------------------------------------------------
def version_line() -> str:
    """``hierot 0.1.0 (torch 2.14.1, python 3.11.7)``, read without importing torch."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from hierot import __version__

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    return f"hierot {__version__} (torch {torch_version}, python {platform.python_version()})"


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
    parser = argparse.ArgumentParser(prog="hierot", description="Hierarchical optimal-transport autoencoders.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the versions of hierot, torch and python, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run, help) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help, description=help)
        add_arguments(sub_parser)
        sub_parser.set_defaults(run=run)
    return parser


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
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
