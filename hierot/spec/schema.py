"""The declarative spec of a hierarchy: a pydantic model loaded from YAML and validated whole.

Component fields (``data``, each layer's ``encoder``/``decoder``/``cost``, ``divergence``,
``penalties``, ``objective``, ``optimizer``, and the choices nested in them: the learning-rate
schedule, the lambda schedule) are discriminated unions over the registries, built after plug-ins
are discovered, so a plug-in's options are validated exactly like a built-in's. Nothing is built
here: :func:`hierot.builder.build` turns a valid spec into modules.

A spec is a JSON-like document and is validated as one, strictly: ``true`` is not the number 1,
``"5"`` is not 5, ``2.0`` is not a count, and no float field (here or in any component's
options) takes ``.inf`` or ``.nan``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    Field,
    PositiveInt,
    create_model,
    model_validator,
)

from hierot.components import (
    ChecksShapes,
    ChecksSizes,
    DescribesObjective,
    Head,
    KnowsShape,
    Shape,
    StrictModel,
    WeighsLayers,
)
from hierot.registry import (
    callbacks,
    costs,
    datasets,
    divergences,
    lambda_schedules,
    lr_schedules,
    networks,
    objectives,
    optimizers,
    penalties,
)
from hierot.spec._checks import fused_update_errors, run_errors

MAX_WIDTH = 2**16
"""Largest hidden width or latent dimension a spec may ask for (a sanity bound, not a limit of
the maths: 2**63 would otherwise reach ``torch.empty`` and fail there)."""
MAX_SEED = 2**32
"""Seeds are 0 <= seed < 2**32: NumPy's generators take no more, and the batch order seeds
``torch.Generator`` with ``seed * 1_000_003 + epoch``, which must fit in 64 bits."""


# -- the rest of the spec ------------------------------------------------------------------------
class LayerSpec(StrictModel):
    """Latent layer i: q(z_i | z_{i-1}), p(z_{i-1} | z_i), and the cost c_{i-1} on z_{i-1}."""

    latent_shape: tuple[Annotated[int, Field(ge=1, le=MAX_WIDTH)], ...] = Field(
        min_length=1, description="shape of z_i: [d] for a vector, [C, H, W] for a feature map"
    )
    encoder: Any = Field(description="network of q(z_i | z_{i-1})")
    decoder: Any = Field(description="network of p(z_{i-1} | z_i)")
    encoder_head: Head = Field("gaussian",
                               description="q(z_i | z_{i-1}): Gaussian or deterministic")
    decoder_head: Head = Field("gaussian",
                               description="p(z_{i-1} | z_i): Gaussian or deterministic")
    cost: Any = Field(
        default_factory=lambda: {"name": "l2sq"},
        validate_default=True,
        description="c_{i-1}(z_{i-1}, z~_{i-1}), the cost on the space this layer decodes to",
    )

    @property
    def dim(self) -> int:
        return math.prod(self.latent_shape)


class SkipUpdateSpec(StrictModel):
    """``train.skip_update``: updates skipped rather than runs stopped (docs/precision.md)."""

    grad_norm_above: Annotated[float, Field(gt=0)] | None = Field(
        None, description="skip an update whose global gradient norm (before clipping) is above "
        "this (none: no threshold)"
    )
    nonfinite: bool = Field(
        True, description="skip an update whose loss or gradient is not finite (false: stop the "
        "run, as without skip_update)"
    )
    max_consecutive: PositiveInt = Field(
        10, description="stop the run (cleanly, keeping the last checkpoint) after this many "
        "skips in a row"
    )


class EMASpec(StrictModel):
    """``train.ema``: an exponential moving average of the weights (docs/precision.md)."""

    decay: float = Field(0.999, gt=0, lt=1, description="weight of the old average, in (0, 1)")
    start_step: Annotated[int, Field(ge=0)] = Field(
        0, description="the average equals the weights up to this step, and averages after it"
    )
    every: PositiveInt = Field(1, description="steps between updates of the average")
    batchnorm: Literal["recompute", "raw"] = Field(
        "recompute", description="BatchNorm statistics of the averaged weights: recompute = "
        "re-estimated for the averages over batchnorm_batches training batches before each "
        "held-out evaluation and checkpoint; raw = the raw model's running statistics"
    )
    batchnorm_batches: PositiveInt = Field(
        50, description="training batches (at most one epoch) over which batchnorm: recompute "
        "estimates the statistics"
    )


class TrainSpec(StrictModel):
    batch_size: int = Field(128, ge=2, description="global batch (BatchNorm needs at least 2)")
    steps: PositiveInt | None = Field(None, description="number of optimiser steps")
    epochs: PositiveInt | None = Field(None,
                                       description="alternative to steps: passes over the data")
    log_every: PositiveInt = Field(50, description="steps between rows of metrics.csv")
    checkpoint_every: PositiveInt = Field(500, description="steps between checkpoints")
    prior_samples: Annotated[int, Field(ge=2)] | None = Field(
        None, description="samples of N(0, I) drawn for D_N each step (default: the batch size; "
        "at least 2, as the divergences' estimators need)"
    )
    progress: bool = Field(True, description="show a progress bar")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="fp32; bf16 = bfloat16 autocast (CPU, recent GPUs); fp16 = float16 autocast "
        "with gradient scaling (CUDA only). Costs and divergences are always computed in fp32",
    )
    compile: bool = Field(False,
                          description="torch.compile every layer network (see docs/precision.md)")
    fused_update: bool = Field(
        False, description="bf16 on one CPU process with adam/adamw: one C kernel updates the "
        "weights from the bf16 gradients and writes their bf16 copies (see docs/precision.md)",
    )
    eval_every: PositiveInt | None = Field(
        None,
        description="steps between evaluations of the objective on the test split (none: never)",
    )
    best_metric: str = Field(
        "val_total", description="held-out metric that picks checkpoints/best.pt (with eval_every)"
    )
    best_mode: Literal["min", "max"] = Field("min", description="whether lower or higher is better")
    skip_update: SkipUpdateSpec | None = Field(
        None, description="skip bad updates instead of stopping (none: a non-finite loss or "
        "gradient stops the run)"
    )
    ema: EMASpec | None = Field(
        None, description="keep an exponential moving average of the weights, used by eval, "
        "sample, plot and the held-out evaluation (none: off)"
    )

    @model_validator(mode="after")
    def _one_budget(self) -> TrainSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps and epochs")
        return self


class DistributedSpec(StrictModel):
    """Data-parallel training under ``torchrun`` (ignored in a single process)."""

    sync_batchnorm: bool = Field(True, description="BatchNorm statistics over the global batch")
    divergence: Literal["global", "local"] = Field(
        "global", description="D_N on the gathered global batch, or on each process's share"
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="torch.distributed backend (auto: nccl on CUDA, gloo on CPU)"
    )


class Spec(StrictModel):
    """A whole hierarchy and how to train it."""

    description: str = ""
    seed: int = Field(0, ge=0, lt=MAX_SEED, description="seed of the weights, batches and noise")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    data: Any
    layers: list[LayerSpec] = Field(min_length=1, description="latent layers, bottom (z_1) first")
    objective: Any = Field(
        default_factory=lambda: {"name": "stacked-wae"}, validate_default=True,
        description="the training objective and its options, from the objective registry",
    )
    divergence: Any = Field(
        default_factory=lambda: {"name": "mmd"}, validate_default=True,
        description="D_N between the aggregate posterior of the top latent and N(0, I)",
    )
    penalties: list[Any] = Field(default_factory=list)
    optimizer: Any = Field(
        default_factory=lambda: {"name": "adam"}, validate_default=True,
        description="the optimiser and its options (learning rate, schedule, clipping), from the "
        "optimizer registry",
    )
    train: TrainSpec
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)
    callbacks: list[Any] = Field(
        default_factory=list,
        description="called during training: trackers (tensorboard, mlflow, wandb) and plug-ins",
    )

    def consistency_errors(self) -> list[str]:
        """Problems between fields, one ``path: message`` line each (empty when consistent).

        Checked after the fields themselves are valid: the objective against the layers (its
        weights, the heads it needs), the penalties against the number of layers, and every layer
        network against the shapes it maps between.
        """
        n, errors = len(self.layers), []
        if isinstance(self.objective, DescribesObjective):
            errors += self.objective.spec_errors(self.layers)
        else:
            errors.append(
                f"objective: the options of objective {self.objective.name!r} must subclass "
                "hierot.objectives.ObjectiveOptions (components.DescribesObjective)"
            )
        for k, penalty in enumerate(self.penalties):
            if isinstance(penalty, WeighsLayers):
                try:
                    penalty.layer_weights(n)
                except ValueError as exc:
                    errors.append(f"penalties.{k}.{exc}")
        errors += self._weight_errors()
        errors += self.shape_errors()
        errors += self.size_errors()
        errors += fused_update_errors(self.train.fused_update, self.train.precision,
                                      self.optimizer.name, self.device)
        return errors + run_errors(self.data, batch_size=self.train.batch_size,
                                   precision=self.train.precision,
                                   best_metric=self.train.best_metric, device=self.device)

    def size_errors(self) -> list[str]:
        """Ask the divergence (:class:`~hierot.components.ChecksSizes`) about the sample counts."""
        if not isinstance(self.divergence, ChecksSizes):
            return []
        n = self.train.batch_size
        m = self.train.prior_samples or n
        problem = self.divergence.size_error(n, m, self.latent_dims[-1])
        if not problem:
            return []
        where = f"{n} samples (train.batch_size) against {m} (train.prior_samples)"
        return [f"divergence: {where}: {problem}"]

    def _weight_errors(self) -> list[str]:
        """Finite options can still resolve to weights that overflow, in float64 or in the
        float32 the terms are computed in (the penalties' here; the objective's in its options)."""
        errors = []  # the objective's own weights: its options' spec_errors check them
        for k, penalty in enumerate(self.penalties):
            if isinstance(penalty, WeighsLayers):
                try:
                    values = penalty.layer_weights(len(self.layers))
                except ValueError:
                    continue  # reported above
                if not all(_fits_float32(w) for w in values):
                    errors.append(f"penalties.{k}: resolves to non-finite layer weights {values}")
        return errors

    def shape_errors(self, data_shape: Shape | None = None) -> list[str]:
        """Ask each network whose options follow :class:`~hierot.components.ChecksShapes`.

        The data shape comes from the argument, else from the data set's options when they follow
        :class:`~hierot.components.KnowsShape`; layer 1 is skipped when it is unknown.
        """
        if data_shape is None and isinstance(self.data, KnowsShape):
            data_shape = self.data.sample_shape()
        errors = []
        below, below_name = data_shape, "data"
        for i, layer in enumerate(self.layers):
            here = layer.latent_shape
            for role, options, src, dst in (
                ("encoder", layer.encoder, below, here),
                ("decoder", layer.decoder, here, below),
            ):
                if (not isinstance(options, ChecksShapes) or src is None or dst is None
                        or below is None):
                    continue
                problem = options.shape_error(tuple(src), tuple(dst))
                if problem:
                    errors.append(
                        f"layers.{i}.{role}: cannot map {below_name} {tuple(below)} and "
                        f"layers.{i} (z_{i + 1}) {tuple(here)}: {problem}"
                    )
            below, below_name = here, f"layers.{i} (z_{i + 1})"
        return errors

    @property
    def latent_dims(self) -> list[int]:
        return [layer.dim for layer in self.layers]

    def resolved_weights(self) -> tuple[list[float] | None, float | None]:
        """(weights of the objective's per-layer terms n = 0..N-1, weight of the divergence).

        For the WAE objectives the reconstruction weights of Eq. (10) and the match weight;
        ``None`` where the objective has no such weight (the VAE objectives use no divergence).
        """
        return self.objective.layer_weights(self.latent_dims), self.objective.match_weight()


def _fits_float32(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX


FLOAT32_MAX = 3.4028234663852886e38
"""Largest float32: a weight above it is infinite once it multiplies a float32 term."""

_cache: dict[tuple, type[Spec]] = {}
_Model = TypeVar("_Model", bound=StrictModel)


def _override(model: type[_Model], **types: Any) -> type[_Model]:
    """A subclass of ``model`` whose named fields get new types (keeping their defaults/docs)."""
    fields: dict[str, Any] = {name: (tp, model.model_fields[name]) for name, tp in types.items()}
    derived = create_model(model.__name__, __base__=model, __module__=model.__module__, **fields)
    derived.__doc__ = model.__doc__
    return derived


def spec_model() -> type[Spec]:
    """The :class:`Spec` model with its unions over the registries as they are now.

    Built after plug-ins are discovered (asking the registries for their names discovers them),
    and rebuilt when a registry changes, so every component is validated the same way.
    """
    registries = (networks, costs, divergences, penalties, datasets, objectives, callbacks,
                  optimizers, lr_schedules, lambda_schedules)  # nested in the options of some
    key = tuple(tuple((e.name, id(e.options)) for e in r.entries()) for r in registries)
    if key not in _cache:
        network = networks.options_union()
        layer = _override(LayerSpec, encoder=network, decoder=network, cost=costs.options_union())
        _cache[key] = _override(
            Spec,
            data=datasets.options_union(),
            layers=Annotated[list[layer], Field(min_length=1)],  # type: ignore[valid-type]
            divergence=divergences.options_union(),
            penalties=list[penalties.options_union()],  # type: ignore[misc]
            objective=objectives.options_union(),
            optimizer=optimizers.options_union(default="adam"),
            callbacks=list[callbacks.options_union()],  # type: ignore[misc]
        )
    return _cache[key]


def _as_json(raw: Any) -> str:
    """``raw`` as JSON text; YAML-only values (dates, non-string keys) become strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k if isinstance(k, str) else str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return str(value)

    try:
        return json.dumps(raw)
    except (TypeError, ValueError) as exc:
        if "Circular reference" in str(exc):
            raise ValueError("a YAML alias refers to itself (a recursive structure)") from None
        return json.dumps(plain(raw))


def validate_spec(raw: Any) -> Spec:
    """Validate a raw mapping (from YAML) into a :class:`Spec`; raises pydantic's error.

    The mapping is validated as the JSON document it is, in pydantic's strict mode: numbers,
    booleans and strings are never converted into one another (lists still become tuples).
    """
    return spec_model().model_validate_json(_as_json(raw), strict=True)
