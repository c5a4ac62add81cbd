"""The ``hierot`` command line. Each sub-command is one function; user errors exit with code 2.

::

    hierot train SPEC_OR_PRESET [--set a.b=value ...] [--out DIR] [--init-from RUN]
    hierot train --resume DIR [--set train.steps=N]
    hierot validate SPEC_OR_PRESET [--set ...]
    hierot show PRESET
    hierot list [KIND]
"""

from __future__ import annotations

import argparse
import sys
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
        help="override a spec field, value parsed as YAML (repeatable), e.g. train.steps=100",
    )


# -- train -------------------------------------------------------------------------------------
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", help="a spec YAML file or a preset name")
    parser.add_argument("--out", help="run directory to create (default: runs/NAME-TIME)")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the run in DIR from its newest intact checkpoint (only "
                             "train.steps/epochs/log_every/checkpoint_every/progress may change)")
    parser.add_argument("--init-from", metavar="RUN",
                        help="start the new run from the model weights of RUN's newest intact "
                             "checkpoint (same architecture; fresh optimiser and step)")
    _overrides(parser)


def train(args: argparse.Namespace) -> int:
    from hierot.api import default_run_dir, fit
    from hierot.rundir import RunDir
    from hierot.trainer import summary_table

    if (args.spec is None) == (args.resume is None):
        raise HierotError("train: give a SPEC_OR_PRESET, or --resume DIR (not both)")
    out = args.resume or args.out or default_run_dir(args.spec)
    try:
        if args.resume:
            result = fit(resume=args.resume, overrides=args.overrides, init_from=args.init_from)
        else:
            result = fit(args.spec, out=out, overrides=args.overrides, init_from=args.init_from)
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


def validate(args: argparse.Namespace) -> int:
    from hierot.loading import load_spec

    spec = load_spec(args.spec, args.overrides)
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


if __name__ == "__main__":
    sys.exit(main())
