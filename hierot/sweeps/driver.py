"""``hierot sweep``: prepare the sweep directory and the study, then run workers until done.

::

    DIR/sweep.yaml          the resolved sweep (the same command, run again, must match it)
    DIR/base.yaml           the resolved base spec, budget applied (every trial starts from it)
    DIR/study.json          the study's name and storage (a database URL without its password)
    DIR/journal.log         the Optuna journal (the default storage)
    DIR/trials/NNNN-<params>/seed-S/   one ordinary run directory per point and seed
    DIR/report.md, trials.json, *.png  written by ``hierot sweep --report DIR``

Running the same command again continues the sweep: finished trials are skipped, trials whose
worker died are retried from their last checkpoint. On many machines, run the same command with
the same ``--storage URL`` on each: the workers share the study's trials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hierot._yaml import parse_yaml
from hierot.errors import HierotError
from hierot.run import atomic_write_text
from hierot.sweeps import _optuna
from hierot.sweeps._directory import BASE_YAML, STUDY_JSON, SWEEP_YAML
from hierot.sweeps._worker import STALE_AFTER_S, STORAGE_ENV, Worker, counted, recover
from hierot.sweeps.schema import SweepSpec, check_against_base, load_sweep, point_key

MAX_ROUNDS = 5
"""Rounds of workers a command starts at most (a round after a worker died retries its trial)."""


def _differences(old: Mapping, new: Mapping) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def prepare(sweep: SweepSpec, base_yaml: str, out: Path, storage_url: str | None):
    """Write (or check) the sweep directory, open the study, enqueue the grid; the study."""
    resolved = sweep.model_dump(mode="json")
    if (out / SWEEP_YAML).is_file():
        old = parse_yaml((out / SWEEP_YAML).read_text())
        changed = _differences(old, resolved)
        if (out / BASE_YAML).read_text() != base_yaml:
            changed.append("base spec")
        if changed:
            raise HierotError(
                f"--out {out}: holds a different sweep ({', '.join(changed)} differ); run the same "
                f"sweep to continue it, or choose another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / BASE_YAML, base_yaml)
        atomic_write_text(out / SWEEP_YAML, yaml.safe_dump(resolved, sort_keys=False))
    atomic_write_text(out / STUDY_JSON, json.dumps(
        {"study": sweep.name, "storage": _optuna.mask(storage_url),
         "journal": storage_url is None}, indent=2))
    study = _optuna.open_study(sweep, _optuna.open_storage(storage_url, out), create=True)
    recorded = study.user_attrs.get("sweep")
    if recorded is None:
        study.set_user_attr("sweep", resolved)
        study.set_user_attr("base_spec", base_yaml)
    elif recorded != resolved or study.user_attrs.get("base_spec") != base_yaml:
        changed = _differences(recorded, resolved) or ["base spec"]
        raise HierotError(f"study {sweep.name!r} in {_optuna.mask(storage_url)} holds a different "
                          f"sweep ({', '.join(changed)} differ); name this one differently (name:)")
    return study


def enqueue_grid(study, sweep: SweepSpec, retry_failed: bool = False) -> int:
    """Enqueue every grid point that has no trial yet (and, with ``retry_failed``, failed ones)."""
    from optuna.trial import TrialState

    from hierot.sweeps._trial import trial_dir_name

    by_point: dict[str, list] = {}
    for trial in study.get_trials(deepcopy=False):
        params = trial.params or trial.system_attrs.get("fixed_params", {})
        by_point.setdefault(point_key(params), []).append(trial)
    added = 0
    for index, params in enumerate(sweep.grid_points()):
        trials = [t for t in by_point.get(point_key(params), []) if counted(t)]
        attrs: dict[str, Any] = {"point": index, "run_dir": trial_dir_name(index, params)}
        if trials and retry_failed and all(t.state == TrialState.FAIL for t in trials):
            attrs["retry_of"] = max(t.number for t in trials)
            for t in trials:  # the retry replaces them
                study._storage.set_trial_user_attr(t._trial_id, "superseded",
                                                   "retried (--retry-failed)")
        elif trials:
            continue
        study.enqueue_trial(params, user_attrs=attrs)
        added += 1
    return added


def _spawn(out: Path, k: int, threads: int, storage_url: str | None, stale_after: float,
           heartbeat: float) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if storage_url is not None:
        env[STORAGE_ENV] = storage_url
    return [
        subprocess.Popen(
            [sys.executable, "-m", "hierot.sweeps._worker", str(out), "--name", f"w{i + 1}",
             "--threads", str(threads), "--stale-after", str(stale_after),
             "--heartbeat", str(heartbeat)],
            env=env)
        for i in range(k)
    ]


def run_sweep(
    source: str | Path | Mapping[str, Any], out: str | Path, *, overrides: Iterable[str] = (),
    updates: Mapping[str, Any] | None = None, base: str | None = None, workers: int = 1,
    threads: int | None = None, storage: str | None = None, retry_failed: bool = False,
    stale_after: float = STALE_AFTER_S, heartbeat: float = 10.0,
) -> dict[str, int]:
    """Run (or continue) a sweep into ``out``; counts of trials by state.

    Parameters
    ----------
    source:
        A sweep file, a sweep preset name or a mapping (the sweep file's fields).
    out:
        The sweep directory (created, or continued when it holds the same sweep).
    overrides:
        ``"a.b=value"`` spec overrides added to the sweep's ``budget``.
    updates:
        Sweep-file fields replaced before validation (``{"seeds": 3}``).
    base:
        Replaces the sweep's base spec (a preset name or a spec file).
    workers:
        Worker processes on this machine; 1 runs the trials in this process.
    threads:
        Torch threads per worker (default: the CPU count divided by ``workers``, at least 1).
    storage:
        An Optuna database URL shared by many machines (default: the journal file in ``out``).
    retry_failed:
        Also retry grid points whose trials failed.
    """
    if workers < 1:
        raise HierotError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise HierotError(f"--threads must be at least 1 (or left out: the CPU count divided by "
                          f"--workers), got {threads}")
    if stale_after <= 0:
        raise HierotError(f"--stale-after must be a positive number of seconds, got {stale_after}")
    _optuna.optuna()  # installed? (before anything is written)
    sweep, label = load_sweep(source, overrides, updates)
    if base is not None:
        sweep = sweep.model_copy(update={"base": base})
    base_yaml = check_against_base(sweep, label)
    out = Path(out)
    study = prepare(sweep, base_yaml, out, storage)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    for _ in range(MAX_ROUNDS):
        recover(study, stale_after)
        if sweep.resolved_sampler == "grid":
            enqueue_grid(study, sweep, retry_failed)
            retry_failed = False
        if not _pending(study, sweep):
            break
        if workers == 1:
            Worker(out, storage, stale_after=stale_after, heartbeat=heartbeat).run()
        else:
            processes = _spawn(out, workers, threads, storage, stale_after, heartbeat)
            try:
                codes = [p.wait() for p in processes]
            except BaseException:  # Ctrl-C, or the driver stopped: stop its workers too
                for p in processes:
                    p.terminate()
                raise
            if all(code != 0 for code in codes):
                raise HierotError(f"every worker failed (exit codes {codes}); "
                                  f"see the messages above")
    return counts(study)


def _pending(study, sweep: SweepSpec) -> bool:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    if sweep.resolved_sampler == "grid":
        return False
    assert sweep.trials is not None  # the spec requires it of tpe and random sweeps
    return sum(counted(t) for t in trials) < sweep.trials


def counts(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.state.name if counted(trial) else "SUPERSEDED"
        out[key] = out.get(key, 0) + 1
    return out
