"""What each kind of component must provide.

These protocols are the contract between the registries and the rest of hierot; built-ins and
plug-ins follow the same ones. Every factory is called as ``factory(options, **context)`` where
``options`` is an instance of its ``Options`` model (a frozen pydantic model, see
:class:`hierot.registry.ComponentOptions`) with the ``name`` field added by the registry.

Tensors are batched: ``(batch, *shape)``. Latent shapes are tuples: ``(32,)`` for a vector,
``(C, H, W)`` for a feature map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from torch import Tensor, nn

from hierot.distributions import Gaussian

Head = Literal["gaussian", "deterministic"]
Shape = tuple[int, ...]


class NetworkFactory(Protocol):
    """``factory(options, *, in_shape, out_shape, head) -> nn.Module``.

    The module maps ``(batch, *in_shape)`` to a :class:`Gaussian` over ``(batch, *out_shape)``:
    mean and log-variance when ``head == "gaussian"``, mean only when ``"deterministic"``.
    A factory that cannot map ``in_shape`` to ``out_shape`` with its options raises
    :class:`hierot.errors.HierotError` naming both shapes.
    """

    def __call__(self, options, *, in_shape: Shape, out_shape: Shape, head: Head) -> nn.Module: ...


@runtime_checkable
class Cost(Protocol):
    """A cost c(z, z~) between a target and a reconstruction, per sample.

    ``__call__(target, reconstruction) -> Tensor[batch]``. When ``closed_form`` is true the cost
    also has ``expected(target, decoded: Gaussian) -> Tensor[batch]``, the exact expectation of the
    cost under the Gaussian decoder; the objective then uses it instead of a Monte Carlo sample.
    """

    closed_form: bool

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor: ...


@runtime_checkable
class Divergence(Protocol):
    """D(Q, P) between two batches of samples, ``(n, *shape)`` and ``(m, *shape)`` -> scalar.

    Feature-map samples are flattened by the divergence. It must be differentiable in both
    arguments and work on any device and floating dtype.
    """

    def __call__(self, samples: Tensor, prior_samples: Tensor) -> Tensor: ...


@dataclass
class LayerOutputs:
    """What one forward pass of the hierarchy produced, for penalties and diagnostics.

    ``encodings[i]`` is q(z_{i+1} | z_i) (i = 0 is q(z_1 | x)); ``decodings[i]`` is
    p(z_i | z_{i+1}) evaluated at the encoded z_{i+1} (i = 0 is p(x | z_1)). Entries may be
    missing (``decodings`` of the flat objective hold only the bottom one).
    """

    encodings: Sequence[Gaussian] = field(default_factory=list)
    decodings: Sequence[Gaussian] = field(default_factory=list)


@runtime_checkable
class Penalty(Protocol):
    """``penalty(outputs: LayerOutputs) -> Tensor[num_layers]``, the unweighted per-layer values.

    ``weights`` holds lambda_i per latent layer (from the penalty's own options); the objective
    reports the plain sum and the weighted sum sum_i lambda_i value_i. The factory is called as
    ``factory(options, num_layers=N)``.
    """

    weights: list[float]

    def __call__(self, outputs: LayerOutputs) -> Tensor: ...


@dataclass
class DataSplits:
    """A whole data set held in memory, values in the range its cost expects.

    ``train_x``/``test_x`` are float tensors ``(n, *shape)``; labels are int64 ``(n,)`` or
    ``None`` for unlabelled data. ``class_names[k]`` names label ``k`` (figure legends show it);
    ``None`` shows the label numbers.
    """

    train_x: Tensor
    test_x: Tensor
    train_y: Tensor | None = None
    test_y: Tensor | None = None
    description: str = ""
    class_names: tuple[str, ...] | None = None

    def class_name(self, label: int) -> str:
        """The name of ``label`` (its number when the data set names none)."""
        names = self.class_names
        return names[label] if names is not None and 0 <= label < len(names) else str(label)

    @property
    def shape(self) -> Shape:
        return tuple(self.train_x.shape[1:])


class DatasetFactory(Protocol):
    """``factory(options, *, seed) -> DataSplits``: the whole train and test splits.

    A missing data set raises :class:`hierot.errors.DataNotFoundError` saying where it looked
    and how to get it.
    """

    def __call__(self, options, *, seed: int) -> DataSplits: ...
