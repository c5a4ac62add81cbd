"""What each kind of component must provide.

These protocols are the contract between the registries and the rest of hierot; built-ins and
plug-ins follow the same ones. Every factory is registered with the model of its options,
``register(name, options=MyOptions)`` (a subclass of :class:`ComponentOptions`), and called as
``factory(options, **context)`` where ``options`` is an instance of that model with the ``name``
field added by the registry.

Besides the factories, the spec calls four optional hooks on the *options* of a component,
before anything is built; each is a protocol here, and the spec calls it through the protocol:

======================= ==========================================================================
:class:`ChecksShapes`   a network's options: ``shape_error(in_shape, out_shape)``
:class:`KnowsShape`     a data set's options: ``sample_shape()``, the shape of one example
:class:`KnowsSize`      a data set's options: ``train_size()``, training examples (or ``None``)
:class:`WeighsLayers`   a penalty's options: ``layer_weights(num_layers)``, lambda_i per layer
:class:`ChecksSizes`    a divergence's options: ``size_error(n, m, dim)``, sample counts it refuses
======================= ==========================================================================

Tensors are batched: ``(batch, *shape)``. Latent shapes are tuples: ``(32,)`` for a vector,
``(C, H, W)`` for a feature map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from hierot.distributions import Gaussian
from hierot.errors import HierotError

Head = Literal["gaussian", "deterministic"]
"""What a layer network outputs: a Gaussian (mean and log-variance) or its mean only."""
Shape = tuple[int, ...]
"""The shape of one example or latent code: ``(d,)`` or ``(C, H, W)``."""


class StrictModel(BaseModel):
    """Immutable, an unknown field is an error, and a float must be finite (``.inf``/``.nan``
    are refused): the base of the spec and of every option model. The spec validates them
    strictly, as JSON (no conversion between numbers, booleans and strings)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ComponentOptions(StrictModel):
    """Base of every component's options (``Literal`` choices, ``Field`` bounds, documented
    fields)."""

    if TYPE_CHECKING:  # for the type checker only: not a pydantic field of this base
        name: str
        """The component's registered name: the tag field every registry adds to the options it
        registers (:meth:`hierot.registry.Registry.tagged_options`)."""


class NoOptions(ComponentOptions):
    """Options of a component that takes none."""


# -- hooks the spec calls on options, before anything is built ---------------------------------
@runtime_checkable
class ChecksShapes(Protocol):
    """Options of a network that can tell, from shapes alone, that it cannot map them.

    ``shape_error(in_shape, out_shape)`` returns ``None`` when the network can map
    ``(batch, *in_shape)`` to ``(batch, *out_shape)``, else a short reason; the spec reports it
    with the layer and both shapes (``Spec.shape_errors``). Networks without it are checked when
    built.
    """

    def shape_error(self, in_shape: Shape, out_shape: Shape) -> str | None: ...


@runtime_checkable
class ChecksSizes(Protocol):
    """Options of a divergence that can tell, from the sample counts, that it cannot run.

    ``size_error(n, m, dim)`` returns ``None`` when ``n`` encoded samples against ``m`` prior
    samples of flattened dimension ``dim`` can work, else a short reason naming the option or
    backend to change; the spec reports it against ``train.batch_size`` and
    ``train.prior_samples`` (``Spec.size_errors``). Divergences without it are not checked.
    """

    def size_error(self, n: int, m: int, dim: int) -> str | None: ...


@runtime_checkable
class KnowsShape(Protocol):
    """Options of a data set that know the shape of one example without loading it.

    ``sample_shape()`` lets the spec check layer 1's networks against the data before loading;
    ``None`` when the shape is known only once the data are loaded (then it is checked then).
    """

    def sample_shape(self) -> Shape | None: ...


@runtime_checkable
class KnowsSize(Protocol):
    """Options of a data set that know how many training examples it holds without loading it.

    ``train_size()`` (``None`` when it cannot be known, e.g. files not yet read) lets
    ``hierot validate`` refuse a ``train.batch_size`` larger than the training set.
    """

    def train_size(self) -> int | None: ...


@runtime_checkable
class WeighsLayers(Protocol):
    """Options of a penalty that hold a weight lambda_i per latent layer.

    ``layer_weights(num_layers)`` returns them, or raises :class:`ValueError` (a
    :class:`~hierot.errors.HierotError`) naming the field when they do not fit ``num_layers``.
    """

    def layer_weights(self, num_layers: int) -> list[float]: ...


@runtime_checkable
class DescribesObjective(Protocol):
    """Options of an objective (:class:`hierot.objectives.ObjectiveOptions` implements them).

    ``label`` names the objective with its equation; ``layer_weights(latent_dims)`` and
    ``match_weight()`` are the weights of its per-layer terms and of the top divergence (``None``
    where it has none); ``spec_errors(layers)`` returns ``path: message`` lines for layers the
    objective cannot use; ``describe(latent_dims)`` is one line for ``hierot validate``.
    """

    label: str

    def layer_weights(self, latent_dims: list[int]) -> list[float] | None: ...

    def match_weight(self) -> float | None: ...

    def spec_errors(self, layers: Sequence) -> list[str]: ...

    def describe(self, latent_dims: list[int]) -> str: ...


@runtime_checkable
class ObjectiveHooks(Protocol):
    """What the trainer and evaluation call on an objective (:class:`hierot.objectives.Objective`).

    ``forward(x) -> Terms``; ``set_step(step)`` before each training step (``None`` after
    training); ``match(encoded, prior)``, a divergence on the data-parallel global batch;
    ``encode(x, depth, sample)`` and ``infer(x)``, its posterior; ``decode``, ``sample(n)``,
    ``reconstruct(x, depth)``, its generative path; ``log_weight(x)`` when ``density``.
    """

    density: bool

    def set_step(self, step: int | None) -> None: ...

    def match(self, encoded: Tensor, prior) -> Tensor: ...

    def encode(self, x: Tensor, depth: int | None = None, sample: bool = True): ...

    def infer(self, x: Tensor): ...

    def decode(self, z: Tensor, layer: int, sample: bool = False) -> Tensor: ...

    def sample(self, n: int) -> Tensor: ...

    def reconstruct(self, x: Tensor, depth: int) -> Tensor: ...

    def log_weight(self, x: Tensor) -> Tensor: ...


class NetworkFactory(Protocol):
    """``factory(options, *, in_shape, out_shape, head) -> nn.Module``.

    The module maps ``(batch, *in_shape)`` to a :class:`Gaussian` over ``(batch, *out_shape)``:
    mean and log-variance when ``head == "gaussian"``, mean only when ``"deterministic"``.
    A factory that cannot map ``in_shape`` to ``out_shape`` with its options raises
    :class:`hierot.errors.HierotError` naming both shapes; its options may say so earlier, when
    the spec is validated, by following :class:`ChecksShapes`.
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

    encodings: list[Gaussian] = field(default_factory=list)
    decodings: list[Gaussian] = field(default_factory=list)


@runtime_checkable
class Penalty(Protocol):
    """``penalty(outputs: LayerOutputs) -> Tensor[num_layers]``, the unweighted per-layer values.

    ``weights`` holds lambda_i per latent layer (from the penalty's own options); the objective
    reports the plain sum and the weighted sum sum_i lambda_i value_i. The factory is called as
    ``factory(options, num_layers=N)``; options following :class:`WeighsLayers` are checked
    against the number of layers when the spec is validated.
    """

    weights: list[float]

    def __call__(self, outputs: LayerOutputs) -> Tensor: ...


@runtime_checkable
class StreamedSplit(Protocol):
    """A training split read from a file batch by batch (``data.storage: stream``).

    ``len``, ``shape`` and ``dtype`` as a tensor's; ``read(indices)`` the rows as stored, a new
    CPU tensor.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype

    def __len__(self) -> int: ...

    def to(self, device: Any = None) -> StreamedSplit:
        """Itself: the rows stay in their file, each batch is moved where it is used."""
        ...

    def read(self, indices) -> Tensor: ...


STREAMED_EVAL_ROWS = 60_000
"""Training rows of a streamed split that :meth:`DataSplits.as_float` reads (for evaluation)."""


@dataclass
class DataSplits:
    """A whole data set, train and test splits, in its native dtype.

    ``train_x``/``test_x`` are tensors ``(n, *shape)`` in the dtype the data come in (uint8 for
    images) or float; labels are int64 ``(n,)`` or ``None`` for unlabelled data.
    ``class_names[k]`` names label ``k`` (figure legends show it); ``None`` shows the label
    numbers.

    ``scale`` says how stored values become what the model sees: ``x / scale`` in float32
    (:meth:`to_float`, called per batch inside the training step), so images stay uint8 in
    memory and on the device, a quarter of float32. ``None``: the values are already float.
    ``train_x`` may also be a :class:`StreamedSplit` (``data.storage: stream``): read per batch.
    """

    train_x: Tensor | StreamedSplit
    test_x: Tensor
    train_y: Tensor | None = None
    test_y: Tensor | None = None
    description: str = ""
    class_names: tuple[str, ...] | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        for split in ("train_x", "test_x"):
            dtype = getattr(self, split).dtype
            if self.scale is None and not dtype.is_floating_point:
                raise HierotError(f"DataSplits.{split} holds {dtype} values without a scale: set "
                                  "scale (the model sees x / scale) or return float values")
        if self.train_x.dtype != self.test_x.dtype:
            raise HierotError(f"DataSplits: train_x is {self.train_x.dtype}, test_x "
                              f"{self.test_x.dtype}; both splits need the same dtype")

    def class_name(self, label: int) -> str:
        """The name of ``label`` (its number when the data set names none)."""
        names = self.class_names
        return names[label] if names is not None and 0 <= label < len(names) else str(label)

    @property
    def shape(self) -> Shape:
        return tuple(self.train_x.shape[1:])

    def to_float(self, x: Tensor) -> Tensor:
        """Stored values ``x`` (a batch, any device) as the model sees them: float32
        ``x / scale``; ``x`` itself when ``scale`` is ``None``.

        The conversion is exactly the one the data sets made once, whole, before (a float32
        copy, then an in-place division), so the batches are bit-identical to it.
        """
        if self.scale is None:
            return x
        return x.to(torch.float32, copy=True).div_(self.scale)

    def as_float(self, streamed_rows: int = STREAMED_EVAL_ROWS) -> DataSplits:
        """The same splits with float values (:meth:`to_float` of the whole of each), in memory.

        A streamed training split is read into memory first, its first ``streamed_rows`` rows
        (and their labels) only: evaluation's probes and classifier train on at most those.
        """
        train, train_y = self.train_x, self.train_y
        if not isinstance(train, Tensor):
            n = min(len(train), streamed_rows)
            train = train.read(torch.arange(n))
            train_y = None if train_y is None else train_y[:n]
        return replace(self, train_x=self.to_float(train), train_y=train_y,
                       test_x=self.to_float(self.test_x), scale=None)


class DatasetFactory(Protocol):
    """``factory(options, *, seed) -> DataSplits``: the whole train and test splits.

    A missing data set raises :class:`hierot.errors.DataNotFoundError` saying where it looked
    and how to get it. Options following :class:`KnowsShape` let the spec check the first layer's
    networks against the data before it is loaded.
    """

    def __call__(self, options, *, seed: int) -> DataSplits: ...

__all__ = [
    "STREAMED_EVAL_ROWS", "ChecksShapes", "ChecksSizes", "ComponentOptions", "Cost", "DataSplits",
    "DatasetFactory", "DescribesObjective", "Divergence", "Head", "KnowsShape", "KnowsSize",
    "LayerOutputs", "NetworkFactory", "NoOptions", "ObjectiveHooks", "Penalty", "Shape",
    "StreamedSplit", "StrictModel", "WeighsLayers",
]
