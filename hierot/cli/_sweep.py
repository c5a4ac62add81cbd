"""The ``sweep`` sub-command of ``hierot``; importing this module registers it.

::

    hierot sweep SWEEP_OR_PRESET --out DIR [--workers K] [--storage URL] [--set a.b=v ...]
    hierot sweep BASE --grid a.b=v1,v2 [--grid ...] [--seeds K] --out DIR     (inline)
    hierot sweep --report DIR [--eval-top N] [--storage URL]
    hierot sweep --list

The command is a shell over :func:`hierot.api.sweep` (``--report`` over
:func:`hierot.api.sweep_report`, ``--list`` over :func:`hierot.api.list_components`); Optuna
and the training stack are imported inside it, so registering it costs nothing.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from hierot._yaml import parse_yaml
from hierot.cli._command import command
from hierot.errors import HierotError


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", nargs="?", metavar="SWEEP",
                        help="a sweep file or sweep preset; with --grid, the base spec or preset")
    parser.add_argument("--out", metavar="DIR", help="the sweep directory (created or continued)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                        help="inline sweep: a grid over a spec field (repeatable)")
    parser.add_argument("--base", metavar="SPEC",
                        help="replace the sweep file's base spec or preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE",
                        help="a spec override for every trial (the budget)")
    parser.add_argument("--seeds", type=int, help="seed replicates per point")
    parser.add_argument("--metric", help="heldout.<key> or eval.<key> (default heldout.total)")
    parser.add_argument("--direction", choices=["minimize", "maximize"])
    parser.add_argument("--sampler", choices=["auto", "grid", "tpe", "random"])
    parser.add_argument("--trials", type=int, help="points to try (tpe, random)")
    parser.add_argument("--workers", type=int, default=1, metavar="K",
                        help="worker processes on this machine (default 1)")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="torch threads per worker (default: CPUs / workers)")
    parser.add_argument("--storage", metavar="URL",
                        help="an Optuna database shared by many machines, e.g. "
                             "postgresql://user:password@host/db (default: DIR/journal.log)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="train again the grid points whose trials failed")
    parser.add_argument("--stale-after", type=float, default=120.0, metavar="S",
                        help="seconds without a heartbeat after which another machine's trial "
                             "counts as dead (default 120)")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.md, trials.json, figures")
    parser.add_argument("--eval-top", type=int, default=0, metavar="N",
                        help="with --report: run `hierot eval` on the N best points first")
    parser.add_argument("--eval-samples", type=int, default=5000, metavar="N",
                        help="with --eval-top: samples for the FCD (default 5000)")
    parser.add_argument("--list", action="store_true", help="list the sweep presets")


def _grid(item: str) -> tuple[str, list]:
    from hierot.sweeps.schema import number_if_numeric

    path, sep, text = item.partition("=")
    if not sep or not path or not text:
        raise HierotError(f"--grid {item!r}: expected KEY.PATH=V1,V2,...")
    try:
        return path, [number_if_numeric(parse_yaml(v)) for v in text.split(",")]
    except yaml.YAMLError as exc:
        raise HierotError(f"--grid {path}: a value is not valid YAML: {exc}") from None


def sweep(args: argparse.Namespace) -> int:
    from hierot import api

    if args.list:
        for entry in api.list_components("sweeps")["sweeps"].entries:
            plugin = "" if entry.source == "hierot" else f"  [{entry.source}]"
            print(f"  {entry.name:<24}{entry.summary}{plugin}")
        return 0
    if args.report:
        path = api.sweep_report(args.report, eval_top=args.eval_top,
                                eval_samples=args.eval_samples, storage=args.storage)
        print(f"written {path}")
        return 0
    if args.sweep is None or args.out is None:
        raise HierotError("sweep: give SWEEP (a sweep file or preset, or a base with --grid) and "
                          "--out DIR; or --report DIR; or --list")
    try:
        done = api.sweep(args.sweep, args.out, grid=dict(_grid(g) for g in args.grid),
                         base=args.base, overrides=args.overrides, seeds=args.seeds,
                         metric=args.metric, direction=args.direction, sampler=args.sampler,
                         trials=args.trials, workers=args.workers, threads=args.threads,
                         storage=args.storage, retry_failed=args.retry_failed,
                         stale_after=args.stale_after)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue the sweep", file=sys.stderr)
        return 130
    print("trials: " + ", ".join(f"{n} {state}" for state, n in sorted(done.counts.items())))
    if done.note:
        print(done.note)
    if done.best:
        point = ", ".join(f"{k}={v}" for k, v in done.best["params"].items())
        print(f"best: trial {done.best['number']} ({point}): "
              f"{done.metric} = {done.best['value']:.6g}")
    print(f"written {done.report}")
    return 0


command("sweep", "run a hyperparameter sweep on Optuna (grid, TPE, random), resumable",
        arguments=_arguments)(sweep)
