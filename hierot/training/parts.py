"""What the trainer uses, built from the builder's modules for one runtime.

:func:`hierot.builder.build` turns a spec into modules (data, hierarchy, objective);
:func:`build_training` turns those into everything the loop of
:class:`~hierot.training.trainer.Trainer` touches, on this process's device:

================ ================================================================================
``precision``    autocast and the fp16 loss scale of ``train.precision`` (:mod:`hierot.precision`)
``model``        the hierarchy on the device, its networks compiled with ``train.compile``
``trained``      what computes the loss: the objective, wrapped by the runtime (DDP under torchrun)
``optimizer``    the ``optimizer`` registry's entry with its kernels (:func:`build_optimizer`)
``scheduler``    the learning-rate schedule of ``optimizer.schedule`` over the run's budget
``updates``      the gradient norm, clipping and ``train.skip_update``
``ema``          ``train.ema``'s moving average of the weights
``order``        the resumable order of batches; ``total_steps`` the budget in steps
``heldout``      ``train.eval_every``'s evaluation on the test split (main process), ``best``
``callbacks``    the spec's ``callbacks`` (main process of a run that writes a run directory),
                 then those passed in
================ ================================================================================

Nothing here trains, reads or writes a run directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hierot.builder import Built, build_optimizer
from hierot.components import StreamedSplit
from hierot.model import Hierarchy
from hierot.objectives import Objective
from hierot.precision import Precision
from hierot.run import Run
from hierot.schedules import build_scheduler
from hierot.training.batches import BatchOrder
from hierot.training.callbacks import Callback, Callbacks, build_callbacks
from hierot.training.ema import WeightEMA
from hierot.training.fused_update import FusedBf16Adam, fused_bf16_adam
from hierot.training.heldout import BestCheckpoint, HeldOutEvaluation
from hierot.training.runtime import Runtime, single_process
from hierot.training.updates import UpdateGuard
from hierot.training.weight_copies import LowPrecisionWeights, low_precision_weights


@dataclass
class TrainingParts:
    """Everything :class:`~hierot.training.trainer.Trainer` uses (see the module's table)."""

    built: Built
    runtime: Runtime
    precision: Precision
    model: Hierarchy
    objective: Objective
    trained: nn.Module
    copies: LowPrecisionWeights | None
    """bf16 on one process: the objective on persistent bf16 copies of the weights (refreshed
    once per update, :mod:`hierot.training.weight_copies`); else ``None`` (use ``trained``)."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    updates: UpdateGuard
    ema: WeightEMA | None
    order: BatchOrder
    total_steps: int
    train_x: Tensor | StreamedSplit
    heldout: HeldOutEvaluation | None
    best: BestCheckpoint
    callbacks: Callbacks


def total_steps(built: Built, order: BatchOrder) -> int:
    """The run's budget in steps: ``train.steps``, or ``train.epochs`` whole passes."""
    train = built.spec.train
    if train.steps is not None:
        return train.steps
    assert train.epochs is not None  # the spec holds exactly one of steps and epochs
    return train.epochs * order.batches_per_epoch


def build_training(built: Built, runtime: Runtime | None = None, *, run: Run | None = None,
                   callbacks: Iterable[Callback] = ()) -> TrainingParts:
    """The parts that train ``built`` on ``runtime`` (default: one process on the spec's device).

    ``run``: the run directory written (its callbacks are built with it); ``callbacks`` are
    called after the spec's, on the main process only.
    """
    spec, train = built.spec, built.spec.train
    runtime = runtime or single_process(spec.device)
    device = runtime.device
    precision = Precision(train.precision, device)
    model = built.model.to(device)
    built.objective.to(device)
    if train.compile:
        from hierot.training.compiling import compile_networks

        compile_networks(model, device)
    trained = _wrapped(built, runtime)
    optimizer = build_optimizer(spec.optimizer, model.parameters())
    copies = low_precision_weights(precision, trained, built.objective, train)
    if train.fused_update:  # Adam's update writing the bf16 copies (CPU, one process)
        optimizer = fused_bf16_adam(optimizer, copies)
    order = BatchOrder(len(built.data.train_x), train.batch_size, spec.seed)
    steps = total_steps(built, order)
    return TrainingParts(
        built=built, runtime=runtime, precision=precision, model=model,
        objective=built.objective, trained=trained, copies=copies, optimizer=optimizer,
        scheduler=build_scheduler(spec.optimizer.schedule, optimizer, steps),
        updates=UpdateGuard(train.skip_update, spec.optimizer.clip_grad_norm, precision,
                            list(model.parameters()), device, list(model.buffers()),
                            copies=copies,
                            fused=optimizer if isinstance(optimizer, FusedBf16Adam) else None),
        ema=WeightEMA(train.ema, model) if train.ema is not None else None,
        order=order, total_steps=steps,
        train_x=built.data.train_x.to(device),  # a streamed set stays in its file
        heldout=_heldout(built, runtime, trained, precision),
        best=BestCheckpoint(train.best_metric, train.best_mode),
        callbacks=_callbacks(built, runtime, run, callbacks),
    )


def _wrapped(built: Built, runtime: Runtime) -> nn.Module:
    """The objective as the runtime trains it (DDP-wrapped under torchrun)."""
    trained = runtime.wrap(built.objective)
    skip = built.spec.train.skip_update
    if trained is not built.objective and skip is not None:
        # every rank skips (the DDP wrapper's attribute; torch types it Tensor | Module)
        trained.skip_nonfinite = skip.nonfinite  # type: ignore[assignment]
    return trained


def _heldout(built: Built, runtime: Runtime, trained: nn.Module,
             precision: Precision) -> HeldOutEvaluation | None:
    """The held-out evaluation of ``train.eval_every`` (main process only; else ``None``)."""
    spec = built.spec
    if spec.train.eval_every is None or not runtime.is_main:
        return None
    objective = getattr(trained, "objective", built.objective)  # inside DDP's wrapper
    return HeldOutEvaluation(objective, built.data.test_x, spec.train.batch_size,
                             runtime.device, precision.autocast, spec.seed,
                             to_float=built.data.to_float)


def _callbacks(built: Built, runtime: Runtime, run: Run | None,
               extra: Iterable[Callback]) -> Callbacks:
    """The spec's callbacks (built by their registry entries) and ``extra``, main process only."""
    if not runtime.is_main:
        return Callbacks([])
    own = build_callbacks(built.spec, run) if run is not None else []
    return Callbacks([*own, *extra])
