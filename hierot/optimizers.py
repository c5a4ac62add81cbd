r"""Optimisers: the spec's ``optimizer``, one entry of the ``optimizers`` registry per algorithm.

Each is a factory ``(options, parameters, **kernels) -> torch.optim.Optimizer``, registered with
its options model (a subclass of :class:`OptimizerOptions`, whose fields every optimiser shares:
the learning rate, the kernels, the learning-rate schedule and gradient clipping). ``kernels`` is
``{"fused": True}`` or ``{"foreach": bool}`` (:func:`hierot.builder.optimizer_kernels`); a factory
whose torch class has a fused kernel says so with a ``fused = True`` attribute.

=========== ===========================================================================
``adam``    Kingma & Ba, 2015, *Adam*, Algorithm 1 (``betas`` = :math:`\beta_1, \beta_2`)
``adamw``   Loshchilov & Hutter, 2019, *Decoupled weight decay regularization*, Algorithm 2
``sgd``     stochastic gradient descent with (heavy-ball) ``momentum``
``rmsprop`` Tieleman & Hinton, 2012, lecture 6.5, with ``momentum``
=========== ===========================================================================

A plug-in optimiser is registered the same way, from the entry-point group
``hierot.optimizers``::

    from hierot.optimizers import OptimizerOptions
    from hierot.registry import optimizers

    class LionOptions(OptimizerOptions):
        lr: float = 1e-4

    @optimizers.register("lion", options=LionOptions)
    def lion(options, parameters, **kernels):
        return Lion(parameters, lr=options.lr, betas=options.betas)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from hierot.components import ComponentOptions
from hierot.registry import choice, lr_schedules, optimizers

Beta = Annotated[float, Field(ge=0, lt=1)]


class OptimizerOptions(ComponentOptions):
    """Options every optimiser takes (``betas`` are read by the Adam family, ``momentum`` by SGD
    and RMSprop)."""

    lr: float = Field(1e-3, gt=0)
    betas: tuple[Beta, Beta] = Field(
        (0.9, 0.999), description="Adam's decay rates of the moment estimates, each in [0, 1)"
    )
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0)
    implementation: Literal["auto", "fused", "foreach", "for-loop"] = Field(
        "auto",
        description="the update's kernels: auto = fused where the device supports it, else "
        "foreach; for-loop = one small kernel per parameter (torch's reference)",
    )
    schedule: choice(lr_schedules) = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "constant"}, validate_default=True,
        description="learning-rate schedule: a factor on lr per step (see docs/schedules.md)",
    )
    clip_grad_norm: float | None = Field(
        None, gt=0, description="clip the global gradient norm to this value (none: no clipping)"
    )


Parameters = Iterable[nn.Parameter]


@optimizers.register("adam", options=OptimizerOptions)
def adam(options: OptimizerOptions, parameters: Parameters, **kernels) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba, 2015), L2 weight decay added to the gradient."""
    return torch.optim.Adam(parameters, lr=options.lr, betas=options.betas,
                            weight_decay=options.weight_decay, **kernels)


@optimizers.register("adamw", options=OptimizerOptions)
def adamw(options: OptimizerOptions, parameters: Parameters, **kernels) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay."""
    return torch.optim.AdamW(parameters, lr=options.lr, betas=options.betas,
                             weight_decay=options.weight_decay, **kernels)


@optimizers.register("sgd", options=OptimizerOptions)
def sgd(options: OptimizerOptions, parameters: Parameters, **kernels) -> torch.optim.Optimizer:
    """Stochastic gradient descent with heavy-ball momentum."""
    return torch.optim.SGD(parameters, lr=options.lr, momentum=options.momentum,
                           weight_decay=options.weight_decay, **kernels)


@optimizers.register("rmsprop", options=OptimizerOptions)
def rmsprop(options: OptimizerOptions, parameters: Parameters, **kernels) -> torch.optim.Optimizer:
    """RMSprop (Tieleman & Hinton, 2012) with momentum."""
    return torch.optim.RMSprop(parameters, lr=options.lr, momentum=options.momentum,
                               weight_decay=options.weight_decay, **kernels)


for _factory in (adam, adamw, sgd):  # torch.optim classes with a fused kernel
    _factory.fused = True  # type: ignore[attr-defined]

__all__ = ["OptimizerOptions", "adam", "adamw", "rmsprop", "sgd"]
