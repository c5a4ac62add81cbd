"""What ``train`` would refuse and the spec alone already tells: checked at ``validate`` time.

Each check returns ``path: message`` lines, as :meth:`hierot.spec.schema.Spec.consistency_errors`
reports them, so ``hierot validate`` refuses what ``hierot train`` would refuse later (after
loading the data, or at the first held-out evaluation): a batch larger than the training set, fp16
on a device that is not CUDA, and a ``best_metric`` that no held-out evaluation produces.
Warnings (a learning-rate warm-up longer than the run) are returned by :func:`spec_warnings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hierot.components import KnowsSize

if TYPE_CHECKING:
    from hierot.spec.schema import Spec

HELD_OUT_PREFIX = "val_"
"""Held-out metrics (``train.eval_every``) are the objective's terms as ``val_<term>``,
``val_w_<term>`` and ``val_total`` (``hierot/training/heldout.py``)."""


def train_size(spec: Spec) -> int | None:
    """Training examples of the spec's data set when its options know it without loading."""
    if isinstance(spec.data, KnowsSize):
        return spec.data.train_size()
    limit = getattr(spec.data, "limit", None)
    return limit if isinstance(limit, int) else None


def run_errors(spec: Spec) -> list[str]:
    """The checks of this module, one ``path: message`` line per problem."""
    errors = []
    n = train_size(spec)
    if n is not None and spec.train.batch_size > n:
        errors.append(f"train.batch_size: {spec.train.batch_size} is larger than the {n} "
                      f"training examples of data set {spec.data.name!r}")
    if spec.train.precision == "fp16" and spec.device not in ("auto",) \
            and not spec.device.startswith("cuda"):
        errors.append(f"train.precision: fp16 needs CUDA (float16 autocast with gradient "
                      f"scaling); the spec's device is {spec.device}: use bf16 or fp32 there")
    metric = spec.train.best_metric
    if not metric.startswith(HELD_OUT_PREFIX):
        errors.append(f"train.best_metric: {metric!r} is not a held-out metric; those are "
                      f"val_total and val_<term> of the objective's terms (val_{metric}?)")
    return errors


def spec_warnings(spec: Spec) -> list[str]:
    """What is valid but almost surely not meant: one line each."""
    warnings = []
    warmup = getattr(spec.optimizer.schedule, "warmup_steps", 0) or 0
    steps = spec.train.steps
    n = train_size(spec)
    if steps is None and spec.train.epochs is not None and n is not None:
        steps = spec.train.epochs * max(n // spec.train.batch_size, 1)
    if steps is not None and warmup > steps:
        warnings.append(
            f"optimizer.schedule.warmup_steps: a warm-up of {warmup} steps is longer than the "
            f"run's {steps} steps: the learning rate never reaches optimizer.lr (it peaks at "
            f"{steps / warmup:.2g} of it)")
    return warnings
