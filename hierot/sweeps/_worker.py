"""A sweep worker: pull trials from the study, train them, tell the study; and dead-worker recovery.

Any number of workers (processes on one machine, or on many machines sharing a database) run
this loop against one study:

1. recover: a RUNNING trial whose worker died (its process is gone on this host, or its
   heartbeat is older than ``stale_after`` seconds) is marked FAIL with the user attribute
   ``superseded`` and a retry of the same point is enqueued, with the same run directory, so it
   resumes from the last checkpoint. Marking FAIL is the storage's atomic test-and-set (a
   finished trial cannot be updated), so one recoverer wins and one retry is enqueued.
2. claim: ``study.ask()`` pops the oldest WAITING trial atomically. A grid sweep enqueues every
   point up front and its workers only ever pull those; a claimed grid trial whose point already
   has an older WAITING, RUNNING or finished trial (two machines enqueued at once) is dropped
   as a duplicate, so every point is trained once.
3. run: while training, a thread writes the ``heartbeat`` user attribute every few seconds.
   A trial that raises is told FAIL with its error in the ``error`` user attribute; the loop
   goes on.

Optuna's own heartbeat (``heartbeat_interval``, ``RetryFailedTrialCallback``) exists for RDB
storages only, not for the journal file; this one works the same on both.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0
STORAGE_ENV = "HIEROT_SWEEP_STORAGE"
FLAGS = ("superseded", "duplicate_of")
"""User attributes of trials that do not count: a dead worker's (retried) and duplicates."""


def counted(trial) -> bool:
    return not any(flag in trial.user_attrs for flag in FLAGS)


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to spot pid reuse."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def worker_dead(worker: dict | None, heartbeat: float, stale_after: float) -> bool:
    """Whether a RUNNING trial's worker is gone: its process (on this host) or its heartbeat."""
    if worker and worker.get("host") == socket.gethostname():
        pid = int(worker["pid"])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        if worker.get("started") and _start_time(pid) not in (None, worker["started"]):
            return True  # the pid now belongs to another process
    return time.time() - heartbeat > stale_after


def recover(study, stale_after: float = STALE_AFTER_S) -> list[int]:
    """Fail the RUNNING trials whose worker died and enqueue a retry of each; their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage, retried = study._storage, []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get("heartbeat") or trial.datetime_start.timestamp()
        if not worker_dead(trial.user_attrs.get("worker"), float(beat), stale_after):
            continue
        try:
            note = f"its worker died (last heartbeat {time.ctime(beat)}); retried"
            storage.set_trial_user_attr(trial._trial_id, "superseded", note)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except (UpdateFinishedTrialError, RuntimeError):
            continue  # finished meanwhile, or another worker recovered it first
        params = trial.params or trial.system_attrs.get("fixed_params", {})
        attrs = {k: trial.user_attrs[k] for k in ("run_dir", "point") if k in trial.user_attrs}
        study.enqueue_trial(params, user_attrs={**attrs, "retry_of": trial.number})
        retried.append(trial.number)
    return retried


class Heartbeat:
    """Writes ``time.time()`` to the trial's ``heartbeat`` user attribute every ``every`` s."""

    def __init__(self, storage, trial_id: int, every: float = HEARTBEAT_S):
        self.storage, self.trial_id, self.every = storage, trial_id, every
        self.stop = threading.Event()
        self.lost: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="hierot-heartbeat")

    def beat(self) -> None:
        self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 the trial was taken over, or the storage went away
                self.lost = f"{type(exc).__name__}: {exc}"
                return

    def __enter__(self) -> Heartbeat:  # noqa: PYI034 (typing.Self needs Python 3.11)
        self.beat()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class Worker:
    """Pulls and runs the trials of one sweep (see the module docstring)."""

    def __init__(self, sweep_dir: Path, storage_url: str | None = None, *, name: str = "w",
                 stale_after: float = STALE_AFTER_S, heartbeat: float = HEARTBEAT_S):
        from hierot.sweeps import _optuna
        from hierot.sweeps._directory import read_sweep_dir

        self.dir = Path(sweep_dir)
        self.sweep, self.base_yaml = read_sweep_dir(self.dir)
        self.storage = _optuna.open_storage(storage_url, self.dir)
        self.study = _optuna.open_study(self.sweep, self.storage, create=False)
        self.distributions = _optuna.distributions(self.sweep)
        self.grid = self.sweep.grid_points() if self.sweep.resolved_sampler == "grid" else None
        self.name, self.stale_after, self.heartbeat = name, stale_after, heartbeat

    def log(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)

    # -- the loop ------------------------------------------------------------------------------
    def more_to_do(self) -> bool:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        if self.grid is not None:
            return False  # every point was enqueued up front
        assert self.sweep.trials is not None  # the spec requires it of tpe and random sweeps
        return sum(counted(t) for t in trials) < self.sweep.trials

    def run(self) -> int:
        """Run trials until there are none left; the number run."""
        done = 0
        while True:
            for number in recover(self.study, self.stale_after):
                self.log(f"trial {number}: its worker died; enqueued a retry")
            if not self.more_to_do():
                return done
            trial = self.study.ask(self.distributions)
            if self._duplicate(trial):
                continue
            self.run_trial(trial)
            done += 1

    def _duplicate(self, trial) -> bool:
        """Drop a grid trial whose point an older, live trial already has."""
        from optuna.trial import TrialState

        if self.grid is None:
            return False
        from hierot.sweeps.schema import point_key

        key = point_key(trial.params)
        live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        for other in self.study.get_trials(deepcopy=False):
            params = other.params or other.system_attrs.get("fixed_params", {})
            if (other.number < trial.number and other.state in live and counted(other)
                    and point_key(params) == key):
                trial.set_user_attr("duplicate_of", other.number)
                self.study.tell(trial, state=TrialState.FAIL)
                self.log(f"trial {trial.number}: duplicate of trial {other.number}, dropped")
                return True
        return False

    def run_dir_name(self, trial) -> str:
        from hierot.sweeps._trial import trial_dir_name

        if "run_dir" in trial.user_attrs:
            return trial.user_attrs["run_dir"]
        if self.grid is not None:
            from hierot.sweeps.schema import point_key

            keys = [point_key(p) for p in self.grid]
            return trial_dir_name(keys.index(point_key(trial.params)), trial.params)
        return trial_dir_name(trial.number, trial.params)

    def _prepare(self, trial) -> tuple[dict[str, Any], str, list[str]]:
        """A trial's parameters (decoded), run directory name and extra overrides (the pruner's
        ``train.eval_every``, if needed); records the name, this worker, the sweep directory and
        the trial's whole spec as its user attributes."""
        from hierot._yaml import parse_yaml
        from hierot.spec.loading import load_spec
        from hierot.sweeps._pruning import eval_overrides
        from hierot.sweeps.schema import point_overrides

        params = self.sweep.decode(trial.params)
        name = self.run_dir_name(trial)
        spec = load_spec(parse_yaml(self.base_yaml), point_overrides(params))
        extra = eval_overrides(self.sweep, spec)  # the pruner's train.eval_every, if needed
        if extra:
            spec = load_spec(parse_yaml(self.base_yaml), [*point_overrides(params), *extra])
        for key, attr in (("run_dir", name), ("worker", this_process()),
                          ("sweep_dir", str(self.dir.resolve())),
                          ("spec", spec.model_dump(mode="json"))):
            trial.set_user_attr(key, attr)
        return params, name, extra

    def run_trial(self, trial) -> None:
        import optuna
        from optuna.trial import TrialState

        from hierot.sweeps._pruning import Pruned, PruneOnEval
        from hierot.sweeps._trial import run_point

        params, name, extra = self._prepare(trial)
        trial_dir = self.dir / "trials" / name
        record = {"sweep": self.sweep.name, "trial": trial.number,
                  "sweep_dir": str(self.dir.resolve())}
        retry = trial.user_attrs.get("retry_of")
        self.log(f"trial {trial.number} {name}: started"
                 + (f" (retry of trial {retry})" if retry is not None else ""))

        val_metric = self.sweep.val_metric if self.sweep.prunes_in_training else None
        in_training = val_metric is not None

        def prune_on_eval(run: Path, offset: int) -> list[PruneOnEval]:
            return [PruneOnEval(trial, val_metric, run, offset)] if val_metric is not None else []

        def report(value: float, step: int) -> None:  # between seeds, for an eval.* metric
            if self.sweep.pruner != "none" and not in_training and step < self.sweep.seeds - 1:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after {step + 1} seed(s): mean {value:.6g}")

        started, cpu = time.perf_counter(), time.process_time()
        with Heartbeat(self.storage, trial._trial_id, self.heartbeat) as beat:
            try:
                value, details = run_point(self.sweep, self.base_yaml, trial_dir, params,
                                           record=record, report=report, log=self.log,
                                           overrides=extra, callbacks=prune_on_eval)
            except optuna.TrialPruned as exc:
                if isinstance(exc, Pruned):
                    trial.set_user_attr("pruned", exc.record)
                trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
                self.study.tell(trial, state=TrialState.PRUNED)
                self.log(f"trial {trial.number}: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 recorded, and the sweep goes on
                text = f"{type(exc).__name__}: {exc}"
                trial_dir.mkdir(parents=True, exist_ok=True)
                (trial_dir / "error.txt").write_text(traceback.format_exc())
                trial.set_user_attr("error", text)
                self.study.tell(trial, state=TrialState.FAIL)
                self.log(f"trial {trial.number}: FAILED: {text}")
                return
        if beat.lost:
            self.log(f"trial {trial.number}: lost its heartbeat ({beat.lost}); result not told")
            return
        trial.set_user_attr("seeds", details["seeds"])
        trial.set_user_attr("sd", details["sd"])
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        trial.set_user_attr("cpu_seconds", round(time.process_time() - cpu, 1))
        self.study.tell(trial, value)
        self.log(f"trial {trial.number}: {self.sweep.metric} = {value:.6g} "
                 f"({time.perf_counter() - started:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    """``python -m hierot.sweeps._worker SWEEP_DIR``: one worker (``hierot sweep`` starts them)."""
    parser = argparse.ArgumentParser(prog="python -m hierot.sweeps._worker")
    parser.add_argument("sweep_dir")
    parser.add_argument("--name", default="w")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stale-after", type=float, default=STALE_AFTER_S)
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_S)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from hierot.errors import HierotError

    try:
        worker = Worker(Path(args.sweep_dir), os.environ.get(STORAGE_ENV), name=args.name,
                        stale_after=args.stale_after, heartbeat=args.heartbeat)
        worker.run()
    except HierotError as exc:
        print(f"[{args.name}] error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
