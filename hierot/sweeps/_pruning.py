"""Pruning a trial on the held-out metric its training logs (``train.eval_every``).

When the sweep's ``pruner`` is not ``none`` and its metric is a term of the held-out objective
(``heldout.total`` or ``heldout.unweighted.<term>`` / ``heldout.weighted.<term>``, logged by the
trainer as ``val_total``, ``val_<term>``, ``val_w_<term>``), every trial trains with
``train.eval_every`` set (the trial's own value, from the base spec, the budget or the swept
parameters; else :data:`DEFAULT_EVALS` evaluations over ``train.steps``) and with a
:class:`PruneOnEval` callback. On each held-out evaluation it reports the value to the trial
(``trial.report(value, step)``) and asks the pruner (``trial.should_prune()``); when pruned it
raises :class:`Pruned` (an ``optuna.TrialPruned``) through the trainer, which closes its files and
callbacks and leaves the run directory as a stopped run: resumable from its last checkpoint with
``hierot train --resume``, its ``metrics.csv`` rows past that checkpoint dropped on resume. The
worker then tells the study the trial is PRUNED (its last reported value and step stay in the
study) and records where in the ``pruned`` user attribute and in the run's ``sweep.json``.

Seeds: a trial trains its seed replicates one after another and reports them on one step axis,
seed ``r`` at ``offset + step`` where ``offset`` is the sum of the steps of the seeds before it,
so the reports stay monotone and every trial is compared with the others at the same point of the
same seed. (The between-seeds running mean of :func:`hierot.sweeps._trial.run_point` is not
reported then: its steps would collide with the training steps.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from hierot.errors import HierotError
from hierot.run import atomic_write_text
from hierot.sweeps._trial import SWEEP_FILE
from hierot.sweeps.schema import SweepSpec, override
from hierot.training.callbacks import Callback

if TYPE_CHECKING:
    from hierot.spec.schema import Spec

DEFAULT_EVALS = 10
"""Held-out evaluations per run when the trial's spec sets no ``train.eval_every``."""


def eval_overrides(sweep: SweepSpec, spec: Spec) -> list[str]:
    """``["train.eval_every=N"]`` when the pruner needs evaluations and ``spec`` has none.

    ``N`` is ``train.steps // DEFAULT_EVALS`` (at least 1). A spec trained by epochs must set
    ``train.eval_every`` itself (its steps are known only once the data is loaded).
    """
    train = spec.train
    if not sweep.prunes_in_training or train.eval_every is not None:
        return []
    if train.steps is None:
        raise HierotError(
            f"pruner: {sweep.pruner} on {sweep.resolved_metric} evaluates during training, and "
            f"this trial trains by epochs without train.eval_every; set it in the budget "
            f"(budget: {{train.eval_every: STEPS}})")
    return [override("train.eval_every", max(1, train.steps // DEFAULT_EVALS))]


class Pruned(optuna.TrialPruned):
    """The pruner stopped a trial's training; ``record`` says where (step, seed, value)."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


class PruneOnEval(Callback):
    """Reports a trial's held-out metric at each evaluation; stops training when pruned.

    Parameters
    ----------
    trial:
        The running ``optuna.Trial``.
    metric:
        The ``val_*`` name to report (:attr:`SweepSpec.val_metric`).
    run:
        The seed's run directory (its ``sweep.json`` records the pruning).
    offset:
        Added to the training step: the steps of the trial's earlier seeds.
    """

    def __init__(self, trial: optuna.Trial, metric: str, run: Path, offset: int = 0):
        self.trial, self.metric, self.run, self.offset = trial, metric, Path(run), offset

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise HierotError(f"metric: the trainer logs no {self.metric!r} (the pruner's); "
                              f"logged: {', '.join(sorted(metrics))}")
        value = float(metrics[self.metric])
        self.trial.report(value, self.offset + step)
        if not self.trial.should_prune():
            return
        record = {"run_dir": self.run.name, "step": step, "report_step": self.offset + step,
                  "metric": self.metric, "value": value}
        self._record(record)
        raise Pruned(f"pruned at step {step} of {self.run.name}: {self.metric} = {value:.6g}",
                     record)

    def _record(self, record: dict[str, Any]) -> None:
        """Add ``pruned`` to the run's ``sweep.json`` (atomically; the rest is left as it is)."""
        file = self.run / SWEEP_FILE
        saved = json.loads(file.read_text()) if file.is_file() else {}
        atomic_write_text(file, json.dumps({**saved, "pruned": record}, indent=2))


__all__ = ["DEFAULT_EVALS", "PruneOnEval", "Pruned", "eval_overrides"]
