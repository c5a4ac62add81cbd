"""Spec -> modules. The builder is the only place that turns names into components.

``build(spec)`` loads the data, builds every layer network from the registry, the costs, the top
divergence and the penalties, and builds the objective named by ``spec.objective.name`` from the
objective registry, handing it an explicit :class:`~hierot.objectives.ObjectiveContext`. Every name
was already checked when the spec was validated; nothing is looked up during training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hierot._utils import identity
from hierot.components import DataSplits
from hierot.errors import HierotError, SpecError
from hierot.model import Hierarchy
from hierot.objectives import Objective, ObjectiveContext
from hierot.optimizers import OptimizerOptions
from hierot.registry import (
    costs,
    datasets,
    divergences,
    networks,
    objectives,
    optimizers,
    penalties,
)
from hierot.spec.schema import Spec


@dataclass
class Built:
    """Everything a spec describes, ready to train."""

    spec: Spec
    data: DataSplits
    model: Hierarchy
    objective: Objective


def load_data(spec: Spec) -> DataSplits:
    """The spec's data set, whole, on the CPU."""
    return datasets.build(spec.data, seed=spec.seed)


def build_model(spec: Spec, data_shape: tuple[int, ...]) -> Hierarchy:
    """The encoders and decoders of every layer, initialised from ``spec.seed``."""
    problems = spec.shape_errors(tuple(data_shape))
    if problems:
        raise SpecError(problems)
    torch.manual_seed(spec.seed)
    encoders, decoders = [], []
    below = tuple(data_shape)
    for layer in spec.layers:
        here = tuple(layer.latent_shape)
        encoders.append(
            networks.build(layer.encoder, in_shape=below, out_shape=here, head=layer.encoder_head)
        )
        decoders.append(
            networks.build(layer.decoder, in_shape=here, out_shape=below, head=layer.decoder_head)
        )
        below = here
    return Hierarchy(encoders, decoders, data_shape, [tuple(l.latent_shape) for l in spec.layers])


def build_objective(
    spec: Spec, model: Hierarchy, gather: Callable[[Tensor], Tensor] = identity
) -> Objective:
    """The objective of ``spec.objective`` with the spec's costs, divergence and penalties.

    ``gather`` is the data-parallel gather of the global batch (the identity on one process); the
    objective applies it in :meth:`~hierot.objectives.Objective.match`.
    """
    context = ObjectiveContext(
        model=model,
        costs=[costs.build(layer.cost) for layer in spec.layers],
        divergence=divergences.build(spec.divergence),
        penalties={p.name: penalties.build(p, num_layers=len(spec.layers)) for p in spec.penalties},
        gather=gather,
        prior_samples=spec.train.prior_samples,
    )
    return objectives.build(spec.objective, context=context)


def build(
    spec: Spec, *, data: DataSplits | None = None, gather: Callable[[Tensor], Tensor] = identity
) -> Built:
    """Data, model and objective for ``spec`` (``data`` skips loading, for tests and tools)."""
    data = data if data is not None else load_data(spec)
    model = build_model(spec, data.shape)
    return Built(spec, data, model, build_objective(spec, model, gather))


def fused_supported(name: str, device: torch.device) -> bool:
    """Whether torch has a fused (one kernel per step) update for optimiser ``name`` on ``device``.

    The optimiser's factory says it has one (a ``fused = True`` attribute, see
    :mod:`hierot.optimizers`); torch says on which devices.
    """
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    has_kernel = getattr(optimizers.get(name).factory, "fused", False)
    return has_kernel and device.type in _get_fused_kernels_supported_devices()


def optimizer_kernels(options: OptimizerOptions, device: torch.device) -> dict[str, bool]:
    """The ``fused``/``foreach`` arguments of ``optimizer.implementation`` on ``device``.

    ``auto`` is the fused update where torch has one for this optimiser and device (Adam,
    AdamW and SGD on CPU, CUDA and MPS in torch >= 2.4), else foreach (one kernel per operation
    over every parameter at once); ``for-loop`` is torch's reference loop over the parameters.
    """
    fused = fused_supported(options.name, device)
    if options.implementation == "auto":
        return {"fused": True} if fused else {"foreach": True}
    if options.implementation == "fused":
        if not fused:
            raise HierotError(
                f"optimizer.implementation: fused is not available for {options.name} on "
                f"{device.type}; use auto, foreach or for-loop"
            )
        return {"fused": True}
    return {"foreach": options.implementation == "foreach"}


def build_optimizer(
    options: OptimizerOptions, parameters: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    """The optimiser of ``options`` (from the ``optimizers`` registry) over ``parameters``.

    On their device, with the kernels of :func:`optimizer_kernels`.
    """
    parameters = list(parameters)
    device = parameters[0].device if parameters else torch.device("cpu")
    return optimizers.build(options, parameters=parameters, **optimizer_kernels(options, device))
