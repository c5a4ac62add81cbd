r"""Learning-rate schedules: a factor on ``optimizer.lr`` at every step, a function of the step
alone.

Optimiser step :math:`k = 1..K` (:math:`K` the run's ``train.steps``, or epochs times batches per
epoch) uses :math:`\text{lr}_k = \text{lr} \cdot f(k)`. Every schedule starts with an optional
linear warm-up (Goyal et al., 2017, *Accurate, large minibatch SGD*, Section 2.2):
:math:`f(k) = k / W` for :math:`k \le W` (``warmup_steps``), after which the schedule proper runs
over the remaining :math:`T = K - W` steps, with :math:`t = (k - W - 1) / (T - 1)` running from 0
at the first step after the warm-up to 1 at the last:

=============== ==========================================================================
``constant``    :math:`f = 1`
``cosine``      :math:`f = m + (1 - m)\,\tfrac12 (1 + \cos \pi t)` (Loshchilov & Hutter, 2017,
                *SGDR*, Eq. 5, one cycle without restarts); :math:`m` = ``min_factor``
``linear``      :math:`f = 1 + (e - 1)\,t`; :math:`e` = ``end_factor``
``step``        :math:`f = \gamma^{n}`, :math:`n` the number of ``milestones`` passed (or
                :math:`\lfloor (k - W - 1) / \text{every} \rfloor`), counted after the warm-up
=============== ==========================================================================

Because :math:`f` depends on the step only, the trainer's :class:`torch.optim.lr_scheduler.LambdaLR`
holds nothing but the step count and the base learning rates, and a resumed run continues
exactly. A schedule that depends on :math:`K` (cosine, linear) is stretched when a resume extends
``train.steps``: the factor after the resume is that of the new budget.

Schedules are the ``lr_schedules`` registry: a factory ``(options) -> schedule`` registered with
its options model (a subclass of :class:`ScheduleOptions`); the schedule has ``factor(step,
total)``. Subclassing :class:`LRSchedule` gives the warm-up; a plug-in (entry-point group
``hierot.lr_schedules``) writes ``after_warmup`` only::

    @lr_schedules.register("inverse-sqrt", options=ScheduleOptions)
    class InverseSqrt(LRSchedule):
        def after_warmup(self, k, span, t):
            return k ** -0.5
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveInt, model_validator

from hierot.components import ComponentOptions
from hierot.registry import lr_schedules


class ScheduleOptions(ComponentOptions):
    """Options every schedule takes: the linear warm-up."""

    warmup_steps: int = Field(
        0, ge=0, description="linear warm-up from lr / warmup_steps to lr over this many steps"
    )

    def factor(self, step: int, total: int) -> float:
        """The factor on lr of step ``step`` of ``total``: the registered schedule's."""
        return lr_schedules.build(self).factor(step, total)


class LRSchedule:
    """Base of the built-in schedules: the warm-up, then :meth:`after_warmup`."""

    def __init__(self, options: ScheduleOptions):
        self.options = options

    def factor(self, step: int, total: int) -> float:
        """The factor on lr of optimiser step ``step`` (1-based) in a run of ``total`` steps."""
        warmup = self.options.warmup_steps
        if step <= warmup:
            return step / warmup
        k, span = step - warmup, max(total - warmup, 1)
        return self.after_warmup(k, span, min(max((k - 1) / max(span - 1, 1), 0.0), 1.0))

    def after_warmup(self, k: int, span: int, t: float) -> float:  # pragma: no cover - abstract
        """The factor of step ``k`` of the ``span`` after the warm-up; ``t`` runs from 0 to 1."""
        raise NotImplementedError


@lr_schedules.register("constant", options=ScheduleOptions)
class Constant(LRSchedule):
    """The same learning rate at every step (after the warm-up, if any)."""

    def after_warmup(self, k: int, span: int, t: float) -> float:
        return 1.0


class CosineOptions(ScheduleOptions):
    min_factor: float = Field(0.0, ge=0, le=1, description="the last step's factor on lr")


@lr_schedules.register("cosine", options=CosineOptions)
class Cosine(LRSchedule):
    """Cosine decay from lr to ``min_factor * lr`` over the steps after the warm-up (SGDR,
    Eq. 5)."""

    options: CosineOptions

    def after_warmup(self, k: int, span: int, t: float) -> float:
        m = self.options.min_factor
        return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * t))


class LinearOptions(ScheduleOptions):
    end_factor: float = Field(0.0, ge=0, description="the last step's factor on lr")


@lr_schedules.register("linear", options=LinearOptions)
class Linear(LRSchedule):
    """Linear decay from lr to ``end_factor * lr`` over the steps after the warm-up."""

    options: LinearOptions

    def after_warmup(self, k: int, span: int, t: float) -> float:
        return 1.0 + (self.options.end_factor - 1.0) * t


class StepOptions(ScheduleOptions):
    gamma: float = Field(0.1, gt=0, le=1, description="factor applied at each decay")
    every: PositiveInt | None = Field(None, description="steps between decays (after the warm-up)")
    milestones: tuple[PositiveInt, ...] = Field(
        (), description="steps after the warm-up at which lr decays (alternative to every)"
    )

    @model_validator(mode="after")
    def _one_rule(self) -> StepOptions:
        if (self.every is None) == (not self.milestones):
            raise ValueError("give exactly one of every and milestones")
        return self


@lr_schedules.register("step", options=StepOptions)
class Step(LRSchedule):
    """Multiply lr by ``gamma`` every ``every`` steps, or at each of ``milestones``."""

    options: StepOptions

    def after_warmup(self, k: int, span: int, t: float) -> float:
        o = self.options
        if o.every is not None:
            return o.gamma ** ((k - 1) // o.every)
        return o.gamma ** sum(k > m for m in o.milestones)


def build_scheduler(
    schedule: ScheduleOptions, optimizer: torch.optim.Optimizer, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` setting step k's lr to ``lr * f(k)``.

    ``schedule`` is the spec's ``optimizer.schedule`` (options of the ``lr_schedules``
    registry). Call its ``step()`` once after every optimiser step. Its state (the step count
    and base learning rates) goes into the checkpoint.
    """
    built = lr_schedules.build(schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: built.factor(done + 1, total))


__all__ = [
    "Constant", "Cosine", "CosineOptions", "LRSchedule", "Linear", "LinearOptions",
    "ScheduleOptions", "Step", "StepOptions", "build_scheduler",
]
