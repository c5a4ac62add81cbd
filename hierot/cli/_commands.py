"""The spec and training sub-commands of ``hierot``; importing this module registers them.

::

    hierot train SPEC_OR_PRESET [--set a.b=value ...] [--steps N] [--device D] [--seed S]
                 [--out DIR] [--init-from RUN]
    hierot train --resume DIR [--steps N]
    hierot validate SPEC_OR_PRESET [--set ...] [--steps N] [--device D] [--seed S]
    hierot show PRESET
    hierot list [KIND]
"""

from __future__ import annotations

import argparse
import sys

from hierot.cli._command import add_overrides, add_shorthands, command, overrides_of
from hierot.errors import HierotError


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
    add_overrides(parser)
    add_shorthands(parser)


def train(args: argparse.Namespace) -> int:
    from hierot.api import default_run_dir, fit
    from hierot.run import Run, summary_table

    if (args.spec is None) == (args.resume is None):
        raise HierotError("train: give a SPEC_OR_PRESET, or --resume DIR (not both)")
    if args.resume and args.seed is not None:
        raise HierotError("train: --seed does not apply to --resume (the run continues its own "
                          "random numbers); start a new run to change the seed")
    out = args.resume or args.out or default_run_dir(args.spec)
    overrides = overrides_of(args)
    try:
        if args.resume:
            result = fit(resume=args.resume, overrides=overrides, init_from=args.init_from)
        else:
            result = fit(args.spec, out=out, overrides=overrides, init_from=args.init_from)
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with: hierot train --resume {out}", file=sys.stderr)
        return 130
    if result.run_dir is not None:  # the main process
        print(summary_table(Run(out)))
    return 0


command("train", "train a hierarchy from a spec or preset", arguments=_train_arguments)(train)


# -- validate, show, list -------------------------------------------------------------------------
def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="a spec YAML file or a preset name")
    add_overrides(parser)
    add_shorthands(parser)


def validate(args: argparse.Namespace) -> int:
    from hierot import api

    spec = api.validate(args.spec, overrides_of(args))
    print(f"{args.spec}: valid ({spec.objective.name} objective, {len(spec.layers)} latent layers "
          f"{[list(l.latent_shape) for l in spec.layers]}, divergence {spec.divergence.name})")
    print(f"objective: {spec.objective.describe(spec.latent_dims)}")
    return 0


command("validate", "check a spec without building anything", arguments=_spec_arguments)(validate)


def show(args: argparse.Namespace) -> int:
    from hierot.spec.loading import dump_spec, load_spec, read_text

    print(dump_spec(load_spec(args.spec)) if args.resolved else read_text(args.spec)[0], end="")
    return 0


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="a preset name (or a spec file)")
    parser.add_argument("--resolved", action="store_true",
                        help="print with every default filled in")


command("show", "print a preset's YAML", arguments=_show_arguments)(show)


def list_components(args: argparse.Namespace) -> int:
    from hierot.api import list_components as listed

    for kind, listing in listed(args.kind).items():
        print(f"{kind}:")
        for entry in listing.entries:
            source = "" if entry.source == "hierot" else f"  [{entry.source}]"
            print(f"  {entry.name:<22}{entry.summary}{source}")
        for problem in listing.plugin_errors:
            print(f"  ! {problem}")
    return 0


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?",
                        help="networks, costs, divergences, ..., optimizers, lr_schedules, "
                             "lambda_schedules, samplers (default: every kind)")


command("list", "list registered components (and plug-ins, with their package)",
        arguments=_list_arguments)(list_components)
