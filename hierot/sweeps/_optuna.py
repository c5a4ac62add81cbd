"""Optuna behind one door: the import guard, storages, samplers, pruners, the study.

Storage: by default an Optuna journal file in the sweep directory (``DIR/journal.log``, one
append-only log guarded by a file lock: safe for several processes on one machine, nothing to
run); ``--storage URL`` names any database Optuna accepts (``postgresql://...``,
``mysql+pymysql://...``, ``sqlite:///...``) for workers on many machines.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from hierot.errors import HierotError
from hierot.sweeps.schema import ChoicesParam, RangeParam, SweepSpec

INSTALL = "pip install 'hierot[sweep]'  (or: pip install 'optuna>=3.6')"
JOURNAL = "journal.log"
RDB_ATTEMPTS = 4
"""Attempts to open a database: workers that create its tables at the same moment collide."""


def optuna():
    """The ``optuna`` module, or a clean error saying how to install it."""
    try:
        import optuna as module
    except ImportError:
        raise HierotError(f"sweeps run on Optuna, which is not installed: {INSTALL}") from None
    module.logging.set_verbosity(module.logging.WARNING)
    warnings.filterwarnings("ignore", category=module.exceptions.ExperimentalWarning)
    return module


def open_storage(url: str | None, sweep_dir: Path):
    """The journal file in ``sweep_dir`` when ``url`` is ``None``, else the database at ``url``."""
    op = optuna()
    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        sweep_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))
    try:
        for attempt in range(RDB_ATTEMPTS):
            try:
                return op.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            except Exception as exc:  # machines creating the tables at once race: try again
                if "IntegrityError" not in type(exc).__name__ or attempt == RDB_ATTEMPTS - 1:
                    raise
                time.sleep(1 + attempt)
    except ImportError as exc:
        cause = exc.__cause__ or exc
        hint = " (PostgreSQL: pip install 'psycopg[binary]', or pip install 'hierot[sweep]')" \
            if url.startswith("postgresql") else ""
        raise HierotError(f"--storage {mask(url)}: the database driver is missing: "
                          f"{cause}{hint}") from None
    except Exception as exc:  # noqa: BLE001 sqlalchemy's: bad URL, server down, wrong password
        raise HierotError(f"--storage {mask(url)}: cannot open the database: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def mask(url: str | None) -> str:
    """``url`` without its password (what is safe to print and write to files)."""
    if url is None:
        return f"journal file {JOURNAL}"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 any URL sqlalchemy cannot parse: mask by hand
        return url.split("@")[-1]


def distributions(sweep: SweepSpec) -> dict[str, Any]:
    """The Optuna distribution of every parameter (a grid is a categorical)."""
    op = optuna()
    out = {}
    for path, param in sweep.params.items():
        if isinstance(param, RangeParam):
            if param.type == "int":
                out[path] = op.distributions.IntDistribution(int(param.low), int(param.high),
                                                             log=param.log)
            else:
                out[path] = op.distributions.FloatDistribution(param.low, param.high, log=param.log)
        else:
            values = param.choices if isinstance(param, ChoicesParam) else param
            out[path] = op.distributions.CategoricalDistribution(
                [ChoicesParam.to_optuna(v) for v in values])
    return out


def sampler(sweep: SweepSpec, seed: int = 0):
    op = optuna()
    kind = sweep.resolved_sampler
    if kind == "grid":
        return _enqueued_grid_sampler(op)(dict(sweep.params), seed=seed)
    if kind == "random":
        return op.samplers.RandomSampler(seed=seed)
    return op.samplers.TPESampler(seed=seed)


def _enqueued_grid_sampler(op):
    """Optuna's ``GridSampler`` for a grid whose every point is enqueued up front (as the driver
    does): such trials carry ``fixed_params`` and no ``grid_id``, and ``GridSampler.after_trial``
    (Optuna 5.0) looks the ``grid_id`` up when one point is left unvisited, a ``KeyError`` that
    crashed every one-point grid at ``study.tell``. Its stopping logic is moot here (workers stop
    when no trial is waiting), so it is skipped for enqueued trials."""

    class EnqueuedGridSampler(op.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            if "grid_id" in trial.system_attrs:
                super().after_trial(study, trial, state, values)

    return EnqueuedGridSampler


def pruner(sweep: SweepSpec):
    op = optuna()
    if sweep.pruner == "median":
        return op.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    return op.pruners.NopPruner()


def open_study(sweep: SweepSpec, storage, *, create: bool):
    """The sweep's study in ``storage`` (created when ``create`` and not there yet)."""
    op = optuna()
    kwargs = {"study_name": sweep.name, "storage": storage, "sampler": sampler(sweep),
                  "pruner": pruner(sweep)}
    if create:
        return op.create_study(direction=sweep.direction, load_if_exists=True, **kwargs)
    try:
        return op.load_study(**kwargs)
    except KeyError:
        raise HierotError(f"no study {sweep.name!r} in the storage") from None
