r"""Learning-rate schedules: a factor on ``optimizer.lr`` at every step, a function of the step alone.

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
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PositiveInt, model_validator


class _Schedule(BaseModel):
    """Shared by every schedule: immutable options and the linear warm-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup_steps: int = Field(
        0, ge=0, description="linear warm-up from lr / warmup_steps to lr over this many steps"
    )

    def factor(self, step: int, total: int) -> float:
        """The factor on lr of optimiser step ``step`` (1-based) in a run of ``total`` steps."""
        if step <= self.warmup_steps:
            return step / self.warmup_steps
        k, span = step - self.warmup_steps, max(total - self.warmup_steps, 1)
        return self._after_warmup(k, span, min(max((k - 1) / max(span - 1, 1), 0.0), 1.0))

    def _after_warmup(self, k: int, span: int, t: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class Constant(_Schedule):
    """The same learning rate at every step (after the warm-up, if any)."""

    name: Literal["constant"]

    def _after_warmup(self, k: int, span: int, t: float) -> float:
        return 1.0


class Cosine(_Schedule):
    """Cosine decay from lr to ``min_factor * lr`` over the steps after the warm-up (SGDR, Eq. 5)."""

    name: Literal["cosine"]
    min_factor: float = Field(0.0, ge=0, le=1, description="the last step's factor on lr")

    def _after_warmup(self, k: int, span: int, t: float) -> float:
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


class Linear(_Schedule):
    """Linear decay from lr to ``end_factor * lr`` over the steps after the warm-up."""

    name: Literal["linear"]
    end_factor: float = Field(0.0, ge=0, description="the last step's factor on lr")

    def _after_warmup(self, k: int, span: int, t: float) -> float:
        return 1.0 + (self.end_factor - 1.0) * t


class Step(_Schedule):
    """Multiply lr by ``gamma`` every ``every`` steps, or at each of ``milestones``."""

    name: Literal["step"]
    gamma: float = Field(0.1, gt=0, le=1, description="factor applied at each decay")
    every: PositiveInt | None = Field(None, description="steps between decays (after the warm-up)")
    milestones: tuple[PositiveInt, ...] = Field(
        (), description="steps after the warm-up at which lr decays (alternative to every)"
    )

    @model_validator(mode="after")
    def _one_rule(self) -> Step:
        if (self.every is None) == (not self.milestones):
            raise ValueError("give exactly one of every and milestones")
        return self

    def _after_warmup(self, k: int, span: int, t: float) -> float:
        if self.every is not None:
            return self.gamma ** ((k - 1) // self.every)
        return self.gamma ** sum(k > m for m in self.milestones)


Schedule = Annotated[Union[Constant, Cosine, Linear, Step], Discriminator("name")]  # noqa: UP007
"""The spec's ``optimizer.schedule``: one of the schedules above, chosen by ``name``."""


def build_scheduler(
    schedule: _Schedule, optimizer: torch.optim.Optimizer, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` setting step k's lr to ``lr * f(k)``.

    Call its ``step()`` once after every optimiser step. Its state (the step count and base
    learning rates) goes into the checkpoint.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: schedule.factor(done + 1, total)
    )


__all__ = ["Constant", "Cosine", "Linear", "Schedule", "Step", "build_scheduler"]
