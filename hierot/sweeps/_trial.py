"""One trial: a point of the sweep trained with each of its seeds, and its metric.

A trial directory ``DIR/trials/NNNN-<params>/`` holds one ordinary run directory per seed
replicate, ``seed-S/`` (resumable with ``hierot train --resume``, evaluable with ``hierot eval``),
each with a ``sweep.json`` beside its ``spec.yaml`` naming the sweep, the trial and the point.
The trial's value is the mean of the metric over its seeds (the paper's criterion selects by
the mean).

The default metric is the held-out objective: every term of the run's own objective (Eq. 10 for
``stacked``, Eq. 7 for ``flat``) on the test split, model in eval mode, averaged over full
batches of the training batch size (:func:`hierot.evaluation._metrics.objective_terms`), written
to ``RUN/heldout.json``. An ``eval.<key>`` metric runs the whole of ``hierot eval`` and reads
``<key>`` from ``RUN/eval.json``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hierot.errors import HierotError
from hierot.run import Run, atomic_write_text
from hierot.sweeps._metric import HELDOUT_FILE
from hierot.sweeps.schema import SweepSpec, override, point_overrides

if TYPE_CHECKING:
    from hierot.training.callbacks import Callback

SWEEP_FILE = "sweep.json"


def trial_dir_name(number: int, params: Mapping[str, Any]) -> str:
    """``0007-lambda_rec=0.05,lambda_match=0.0001`` (last component of each path, file-safe)."""
    parts = [f"{path.rsplit('.', 1)[-1]}={value:g}" if isinstance(value, float)
             else f"{path.rsplit('.', 1)[-1]}={value}" for path, value in params.items()]
    slug = re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts))[:120]
    return f"{number:04d}-{slug}"


def seed_dirs(trial_dir: Path, sweep: SweepSpec, base_seed: int) -> list[tuple[int, Path]]:
    return [(base_seed + r, trial_dir / f"seed-{base_seed + r}") for r in range(sweep.seeds)]


def lookup(tree: Mapping[str, Any], path: str, what: str) -> float:
    """``tree[a][b]`` for ``path = "a.b"``; a missing key lists the keys there."""
    node: Any = tree
    for depth, key in enumerate(path.split(".")):
        if not isinstance(node, Mapping) or key not in node:
            where = ".".join(path.split(".")[:depth]) or "the top level"
            keys = ", ".join(node) if isinstance(node, Mapping) else f"a {type(node).__name__}"
            raise HierotError(f"metric: {what} has no {key!r} under {where}; there: {keys}")
        node = node[key]
    if not isinstance(node, (int, float)) or isinstance(node, bool):
        raise HierotError(f"metric: {what} {path} is not a number but {node!r}")
    return float(node)


def heldout(run: Path) -> dict:
    """The run's objective on its test split (eval mode, full batches): ``RUN/heldout.json``."""
    from hierot.evaluation._metrics import objective_terms
    from hierot.evaluation.trained import load_run

    loaded = load_run(run)
    result = objective_terms(loaded.built.objective, loaded.data.test_x,
                             loaded.spec.train.batch_size, device=loaded.device, seed=0)
    result["step"] = loaded.step
    result["test_points"] = len(loaded.data.test_x)
    atomic_write_text(run / HELDOUT_FILE, json.dumps(result, indent=2))
    return result


def measure(sweep: SweepSpec, run: Path) -> tuple[float, dict]:
    """The sweep's metric of a trained run, and the held-out objective terms."""
    terms = heldout(run)
    source, _, path = sweep.resolved_metric.partition(".")
    if source == "heldout":
        return lookup(terms, path, HELDOUT_FILE), terms
    from hierot.evaluation.evaluator import EVAL_FILE, evaluate

    result = evaluate(run, samples=sweep.eval_samples)
    return lookup(result, path, EVAL_FILE), terms


def train_seed(base_yaml: str, overrides: list[str], run: Path, record: Mapping[str, Any],
               callbacks: Sequence[Callback] = ()) -> None:
    """Train (or finish training) one seed replicate in ``run``, recording ``record`` in it;
    ``callbacks`` go to :func:`hierot.api.fit` beside the spec's own."""
    from hierot._yaml import parse_yaml
    from hierot.training.session import fit

    run_dir = Run(run)
    if run_dir.spec_file.exists() and run_dir.checkpoints():
        fit(resume=run, callbacks=callbacks)  # the steps left, exactly as if never stopped
        return
    if run.exists():  # died before its first checkpoint: nothing worth keeping
        shutil.rmtree(run)
    run.mkdir(parents=True)
    atomic_write_text(run / SWEEP_FILE, json.dumps(dict(record), indent=2))
    fit(parse_yaml(base_yaml), out=run, overrides=overrides, callbacks=callbacks)


def run_point(
    sweep: SweepSpec, base_yaml: str, trial_dir: Path, params: Mapping[str, Any], *,
    record: Mapping[str, Any], report: Callable[[float, int], None] | None = None,
    log: Callable[[str], None] = print, overrides: Sequence[str] = (),
    callbacks: Callable[[Path, int], Sequence[Callback]] | None = None,
) -> tuple[float, dict]:
    """Train every seed of a point in ``trial_dir`` and return the mean metric and details.

    Seeds already measured (their ``sweep.json`` holds a value) are not trained again; a seed
    with a checkpoint resumes from it. ``report(value, r)`` is called after seed replicate
    ``r`` with the running mean (for a pruner); it may raise to stop the trial. ``overrides``
    are added to the point's; ``callbacks(run, offset)`` gives the callbacks of the seed trained
    in ``run``, ``offset`` being the steps of the seeds before it (a pruner's step axis).
    """
    from hierot._yaml import parse_yaml

    base_seed = int(parse_yaml(base_yaml).get("seed", 0))
    overrides = [*point_overrides(params), *overrides, "train.progress=false"]
    values: list[float] = []
    seeds: list[dict] = []
    offset = 0
    for r, (seed, run) in enumerate(seed_dirs(trial_dir, sweep, base_seed)):
        done = run / SWEEP_FILE
        saved = json.loads(done.read_text()) if done.is_file() else {}
        if "value" in saved:
            value, terms = saved["value"], saved["heldout"]
            log(f"{trial_dir.name} seed {seed}: measured before, {sweep.metric} = {value:.6g}")
        else:
            about = {**record, "params": dict(params), "seed": seed,
                     "metric": sweep.resolved_metric}
            train_seed(base_yaml, [*overrides, override("seed", seed)], run, about,
                       callbacks(run, offset) if callbacks is not None else ())
            value, terms = measure(sweep, run)
            if not math.isfinite(value):
                raise HierotError(f"{sweep.metric} of seed {seed} is {value}")
            saved = {**about, "value": value, "heldout": terms}
            atomic_write_text(done, json.dumps(saved, indent=2))
            log(f"{trial_dir.name} seed {seed}: {sweep.metric} = {value:.6g}")
        offset += int(terms["step"])
        values.append(value)
        seeds.append({"seed": seed, "run_dir": run.name, "value": value,
                      "heldout_total": terms["total"], "heldout": terms["unweighted"]})
        if report is not None:
            report(sum(values) / len(values), r)
    mean = sum(values) / len(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    details = {"value": mean, "sd": sd, "seeds": seeds}
    atomic_write_text(trial_dir / "trial.json",
                      json.dumps({**record, "params": dict(params), **details}, indent=2))
    return mean, details
