"""What ``train`` would refuse and the spec alone already tells: checked at ``validate`` time.

Each check returns ``path: message`` lines, as :meth:`hierot.spec.schema.Spec.consistency_errors`
reports them (it passes the fields a check reads, so this module needs no ``Spec``), so
``hierot validate`` refuses what ``hierot train`` would refuse later (after loading the data, or at
the first held-out evaluation): a batch larger than the training set, fp16 on a device that is not
CUDA, and a ``best_metric`` that no held-out evaluation produces.
Warnings (a learning-rate warm-up longer than the run) are returned by :func:`spec_warnings`.
"""

from __future__ import annotations

from hierot.components import ComponentOptions, KnowsSize

HELD_OUT_PREFIX = "val_"
"""Held-out metrics (``train.eval_every``) are the objective's terms as ``val_<term>``,
``val_w_<term>`` and ``val_total`` (``hierot/training/heldout.py``)."""


def train_size(data: ComponentOptions) -> int | None:
    """Training examples of the data set ``data`` (a spec's ``data:`` options) when its options
    know it without loading."""
    if isinstance(data, KnowsSize):
        return data.train_size()
    limit = getattr(data, "limit", None)
    return limit if isinstance(limit, int) else None


def run_errors(data: ComponentOptions, *, batch_size: int, precision: str, best_metric: str,
               device: str) -> list[str]:
    """The checks of this module on a spec's ``data``, ``train.batch_size``,
    ``train.precision``, ``train.best_metric`` and ``device``: one ``path: message`` line per
    problem."""
    errors = []
    n = train_size(data)
    if n is not None and batch_size > n:
        errors.append(f"train.batch_size: {batch_size} is larger than the {n} "
                      f"training examples of data set {data.name!r}")
    if precision == "fp16" and device not in ("auto",) and not device.startswith("cuda"):
        errors.append(f"train.precision: fp16 needs CUDA (float16 autocast with gradient "
                      f"scaling); the spec's device is {device}: use bf16 or fp32 there")
    if not best_metric.startswith(HELD_OUT_PREFIX):
        errors.append(f"train.best_metric: {best_metric!r} is not a held-out metric; those are "
                      f"val_total and val_<term> of the objective's terms (val_{best_metric}?)")
    return errors


FUSED_OPTIMIZERS = ("adam", "adamw")
"""The optimisers ``train.fused_update`` covers (Adam's update, L2 or decoupled weight decay)."""


def fused_update_errors(fused: bool, precision: str, optimizer: str, device: str) -> list[str]:
    """What ``train.fused_update`` needs (docs/precision.md): ``train.precision`` bf16, an
    ``optimizer`` of :data:`FUSED_OPTIMIZERS` and the CPU (one process: checked when training
    starts)."""
    if not fused:
        return []
    errors = []
    if precision != "bf16":
        errors.append(f"train.fused_update: needs train.precision bf16 (its kernel reads bf16 "
                      f"gradients and writes the bf16 weight copies), not {precision}")
    if optimizer not in FUSED_OPTIMIZERS:
        errors.append(f"train.fused_update: covers optimizer.name "
                      f"{' and '.join(FUSED_OPTIMIZERS)}, not {optimizer!r}")
    if device not in ("auto", "cpu"):
        errors.append(f"train.fused_update: runs on the CPU only; the spec's device is {device}")
    return errors


def spec_warnings(data: ComponentOptions, *, batch_size: int, steps: int | None,
                  epochs: int | None, warmup_steps: int) -> list[str]:
    """What is valid but almost surely not meant, from a spec's ``data``, ``train.batch_size``,
    ``train.steps``, ``train.epochs`` and ``optimizer.schedule.warmup_steps``: one line each."""
    warnings = []
    n = train_size(data)
    if steps is None and epochs is not None and n is not None:
        steps = epochs * max(n // batch_size, 1)
    if steps is not None and warmup_steps > steps:
        warnings.append(
            f"optimizer.schedule.warmup_steps: a warm-up of {warmup_steps} steps is longer than "
            f"the run's {steps} steps: the learning rate never reaches optimizer.lr (it peaks at "
            f"{steps / warmup_steps:.2g} of it)")
    return warnings
