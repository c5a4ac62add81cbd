"""Hyperparameter sweeps on Optuna: ``hierot sweep``.

A sweep file names a base spec, the fields to vary (grids, ranges, choices), seeds per point,
the metric to select by and a budget (:mod:`hierot.sweeps.schema`). The driver
(:mod:`hierot.sweeps.driver`) keeps the study in an Optuna storage (a journal file in the sweep
directory by default, a database server for many machines) and runs worker processes
(:mod:`hierot.sweeps._worker`) that pull trials; each trial trains its point with every seed as
ordinary run directories (:mod:`hierot.sweeps._trial`). :mod:`hierot.sweeps.report` writes the
table, the best point and the figures. See ``docs/sweeps.md``.
"""

from hierot.sweeps.schema import SweepError, SweepSpec, load_sweep

__all__ = ["SweepError", "SweepSpec", "load_sweep", "run_sweep", "write_report"]


def run_sweep(*args, **kwargs):
    """See :func:`hierot.sweeps.driver.run_sweep`."""
    from hierot.sweeps.driver import run_sweep as run

    return run(*args, **kwargs)


def write_report(*args, **kwargs):
    """See :func:`hierot.sweeps.report.write_report`."""
    from hierot.sweeps.report import write_report as write

    return write(*args, **kwargs)
