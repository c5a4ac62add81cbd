"""The sweep file: what to vary, how many seeds, what to select by, on which budget.

A sweep file is YAML validated whole by strict pydantic models (an unknown field is an error),
then checked against its base spec: every point of every grid (and both ends of every range)
is applied to the base spec and validated, so a misspelt parameter path fails before anything
trains. Every problem is reported at once, one ``path.to.field: message`` line each, as a
:class:`SweepError`. See ``docs/sweeps.md`` for the reference.

::

    name: mnist-lambda-grid
    base: quickstart                       # a preset name or a spec file (relative to this file)
    params:
      weights.lambda_rec: [0.01, 0.05, 0.1, 0.5, 1]          # a grid
      weights.lambda_match: {low: 1.0e-4, high: 1, log: true}  # a range (TPE or random)
      optimizer.name: {choices: [adam, adamw]}                 # a categorical
    seeds: 1                               # seed replicates per point, averaged in one trial
    metric: heldout.total                  # or heldout.unweighted.rec_x, eval.sample_quality.fcd
    direction: minimize
    budget: {train.steps: 1000}            # spec overrides applied to every trial
    sampler: auto                          # grid when every parameter is a grid, else tpe
    trials: 30                             # number of points for tpe / random
    pruner: none                           # or median (on val_* during training, see pruning.py)
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    ValidationError,
    model_validator,
)

from hierot._yaml import parse_yaml
from hierot.components import StrictModel
from hierot.errors import HierotError, SpecError
from hierot.sweeps._metric import metric_errors

Scalar = Union[bool, int, float, str]  # noqa: UP007
METRIC_SOURCES = ("heldout", "eval")
METRIC_ALIASES = {
    "fcd": "eval.sample_quality.fcd",
    "heldout": "heldout.total",
}
"""Short names accepted for ``metric``."""


class SweepError(HierotError):
    """A sweep file that failed validation; ``lines`` holds one ``path: message`` per problem."""

    def __init__(self, lines: list[str], source: str | None = None):
        self.lines, self.source = lines, source
        head = f"invalid sweep {source}" if source else "invalid sweep"
        super().__init__(head + ":\n" + "\n".join(f"  {line}" for line in lines))


_Strict = StrictModel
"""The shared options base: frozen, no unknown field, no ``.inf``/``.nan`` float."""


class RangeParam(_Strict):
    """An interval for TPE or random sampling: ``{low, high, log, type}``."""

    low: float
    high: float
    log: bool = Field(False, description="sample uniformly in log space (low must be > 0)")
    type: Literal["float", "int"] = "float"

    @model_validator(mode="after")
    def _check(self) -> RangeParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be smaller than high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low:g}")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high)):
            raise ValueError("type: int needs integer low and high")
        return self

    def ends(self) -> list[Any]:
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


def number_if_numeric(value: Any) -> Any:
    """``"1e-4"`` -> ``0.0001``: YAML 1.1 (PyYAML) reads an exponent without a dot as a string."""
    if isinstance(value, str):
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


Numeric = Annotated[Scalar, BeforeValidator(number_if_numeric)]
GridParam = Annotated[list[Numeric], Field(min_length=1)]


Choice = Union[Numeric, Annotated[list[Numeric], Field(min_length=1)]]  # noqa: UP007


class ChoicesParam(_Strict):
    """A categorical parameter for TPE or random sampling: ``{choices: [...]}``.

    A choice is a scalar or a list of scalars (``[[32, 32], [64, 64]]`` for a network's widths).
    Optuna's categoricals hold scalars only, so a list choice is given to Optuna as its JSON
    text (:meth:`to_optuna`) and read back from it (:meth:`from_optuna`).
    """

    choices: list[Choice] = Field(min_length=1)

    @staticmethod
    def to_optuna(value: Any) -> Any:
        """The scalar Optuna stores for ``value`` (a list becomes its JSON text)."""
        return json.dumps(value) if isinstance(value, list) else value

    def from_optuna(self, value: Any) -> Any:
        """The choice Optuna's stored ``value`` stands for."""
        texts = {json.dumps(c): c for c in self.choices if isinstance(c, list)}
        return texts.get(value, value) if isinstance(value, str) else value


def _param_kind(value: Any) -> str:
    if isinstance(value, (RangeParam, ChoicesParam)):  # when serialising
        return "range" if isinstance(value, RangeParam) else "choices"
    if isinstance(value, Mapping):
        return "choices" if "choices" in value else "range"
    return "grid"


Param = Annotated[
    Union[  # noqa: UP007
        Annotated[GridParam, Tag("grid")],
        Annotated[RangeParam, Tag("range")],
        Annotated[ChoicesParam, Tag("choices")],
    ],
    Discriminator(_param_kind),
]


class SweepSpec(_Strict):
    """A whole sweep (see the module docstring and ``docs/sweeps.md``)."""

    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="the study's name in the storage (default: the file's or preset's name)",
    )
    description: str = ""
    base: str = Field(description="a preset name or a spec file (relative to the sweep file)")
    params: dict[str, Param] = Field(min_length=1, description="dotted spec path -> values")
    seeds: PositiveInt = Field(1, description="seed replicates per point, averaged in one trial")
    metric: str = Field("heldout.total", description="what to select by")
    direction: Literal["minimize", "maximize"] = "minimize"
    budget: dict[str, Any] = Field(default_factory=dict, description="overrides for every trial")
    sampler: Literal["auto", "grid", "tpe", "random"] = "auto"
    trials: PositiveInt | None = Field(None, description="number of points for tpe / random")
    pruner: Literal["none", "median"] = "none"
    eval_samples: PositiveInt = Field(
        1000, description="generated samples for the FCD when the metric is an eval.* key")

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        metric = METRIC_ALIASES.get(self.metric, self.metric)
        source = metric.split(".", 1)[0]
        if source not in METRIC_SOURCES or "." not in metric:
            raise ValueError(
                f"metric: {self.metric!r} is not heldout.<key> (the held-out objective, e.g. "
                f"heldout.total, heldout.unweighted.rec_x) or eval.<key> (a number in eval.json, "
                f"e.g. eval.sample_quality.fcd); short names: {', '.join(METRIC_ALIASES)}")
        grids = all(isinstance(v, list) for v in self.params.values())
        sampler = self.resolved_sampler
        if sampler == "grid" and not grids:
            ranged = [k for k, v in self.params.items() if not isinstance(v, list)]
            raise ValueError(f"sampler: grid needs a list of values for every parameter; "
                             f"{', '.join(ranged)} {'is' if len(ranged) == 1 else 'are'} not")
        if sampler == "grid" and self.trials is not None:
            raise ValueError(f"trials: a grid sweep trains every one of its {self.grid_size} "
                             f"points; leave trials out (or choose sampler: tpe or random)")
        if sampler != "grid" and self.trials is None:
            raise ValueError(f"trials: sampler {sampler} needs the number of points to try")
        return self

    # -- derived -----------------------------------------------------------------------------
    @property
    def resolved_metric(self) -> str:
        return METRIC_ALIASES.get(self.metric, self.metric)

    @property
    def val_metric(self) -> str | None:
        """The trainer's ``val_*`` name of a ``heldout.*`` metric (``heldout.total`` ->
        ``val_total``, ``heldout.unweighted.rec_x`` -> ``val_rec_x``, ``heldout.weighted.rec_x``
        -> ``val_w_rec_x``); ``None`` for a metric the trainer does not log while training."""
        source, _, path = self.resolved_metric.partition(".")
        kind, _, term = path.partition(".")
        if source != "heldout":
            return None
        if path == "total":
            return "val_total"
        if kind in ("unweighted", "weighted") and term and "." not in term:
            return f"val_{'w_' if kind == 'weighted' else ''}{term}"
        return None

    @property
    def prunes_in_training(self) -> bool:
        """Whether trials report the held-out metric to the pruner while they train."""
        return self.pruner != "none" and self.val_metric is not None

    @property
    def resolved_sampler(self) -> str:
        if self.sampler != "auto":
            return self.sampler
        return "grid" if all(isinstance(v, list) for v in self.params.values()) else "tpe"

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.params.values() if isinstance(v, list))

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of a grid sweep, the last parameter varying fastest."""
        names = list(self.params)
        return [dict(zip(names, values)) for values in itertools.product(*self.params.values())]

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's parameters as Optuna stores them -> the sweep's values (list choices)."""
        decoded = {}
        for path, value in params.items():
            param = self.params.get(path)
            decoded[path] = param.from_optuna(value) if isinstance(param, ChoicesParam) else value
        return decoded

    def budget_overrides(self) -> list[str]:
        return [override(path, value) for path, value in self.budget.items()]


def override(path: str, value: Any) -> str:
    """A ``--set`` string whose value reads back as ``value`` (``1.0e-04`` stays a float)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"{path}={text.removesuffix('...').strip()}"


def point_overrides(params: Mapping[str, Any]) -> list[str]:
    return [override(path, value) for path, value in params.items()]


def point_key(params: Mapping[str, Any]) -> str:
    """A canonical text of a point, to recognise it again."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)


# -- reading -----------------------------------------------------------------------------------
_TAGS = {"grid", "range", "choices"}


def _format(error: ValidationError, raw: Any) -> list[str]:
    """One ``path: message`` line per error, without pydantic's union tags."""
    lines: list[str] = []
    for err in error.errors():
        parts, node = [], raw
        for item in err["loc"]:
            if item in _TAGS and not (isinstance(node, Mapping) and item in node):
                continue
            parts.append(str(item))
            try:
                node = node[item]
            except (KeyError, IndexError, TypeError):
                node = None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid" or err["type"] == "model_attributes_type":
            message = "expected a list of values, {low, high[, log, type]} or {choices: [...]}"
        elif "choices" in parts:  # a choice matched neither a scalar nor a list of scalars
            parts = parts[: parts.index("choices") + 2]
            message = "a choice is a number, a string, a boolean or a list of those"
        if lines and lines[-1] == f"{'.'.join(parts)}: {message}":
            continue  # one line per choice, not one per union member
        if not parts and ": " in message:  # a check across fields names its field first
            field, message = message.split(": ", 1)
            parts = [field]
        lines.append(f"{'.'.join(parts) or '<sweep>'}: {message}")
    return lines


def read_sweep_text(source: str | Path) -> tuple[str, str, Path | None]:
    """YAML text, label and folder (for a relative ``base``) of a sweep file or sweep preset."""
    from hierot.registry import sweeps

    path = Path(source)
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path), path.parent
    if str(source) in sweeps:
        return sweeps.get(str(source)).factory(), f"sweep preset {source}", None
    from hierot.errors import unknown_name_message

    known = unknown_name_message("sweep", str(source), sweeps.names()).split("; ", 1)[-1]
    raise HierotError(f"{str(source)!r} is neither a sweep file nor a sweep preset. {known}")


def validate_sweep(raw: Any, label: str = "<mapping>") -> SweepSpec:
    """Validate a raw mapping into a :class:`SweepSpec` (fields only, not against the base)."""
    if not isinstance(raw, Mapping):
        raise SweepError([f"the top level must be a mapping, got {type(raw).__name__}"], label)
    try:
        return SweepSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise SweepError(_format(exc, raw), label) from None


def load_sweep(
    source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (),
    updates: Mapping[str, Any] | None = None,
) -> tuple[SweepSpec, str]:
    """Read and validate a sweep file or sweep preset; ``overrides`` join its ``budget``.

    ``updates`` replace top-level fields before validation (the command line's ``--seeds``...).

    Returns the sweep (with ``base`` resolved to an absolute path when it names a file, and
    ``name`` filled in) and its label.
    """
    if isinstance(source, Mapping):
        raw, label, folder, stem = dict(source), "<mapping>", None, "sweep"
    else:
        text, label, folder = read_sweep_text(source)
        try:
            raw = parse_yaml(text)
        except yaml.YAMLError as exc:
            raise SweepError([f"not valid YAML: {exc}"], label) from None
        stem = Path(str(source)).name.removesuffix(".yaml").removesuffix(".yml")
    if isinstance(raw, dict) and updates:
        raw = {**raw, **updates}
    sweep = validate_sweep(raw, label)
    budget = dict(sweep.budget)
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep or not path:
            raise SweepError([f"--set {item!r}: expected KEY.PATH=VALUE"], label)
        budget[path] = parse_yaml(text)
    base = sweep.base
    if folder is not None and (folder / base).is_file():
        base = str((folder / base).resolve())
    return sweep.model_copy(update={"base": base, "budget": budget,
                                    "name": sweep.name or stem}), label


def check_against_base(sweep: SweepSpec, label: str) -> str:
    """Validate the base spec with the budget and every grid point / range end; its YAML.

    Raises :class:`SweepError` naming ``base``, ``budget`` or ``params.<path>`` and the value.
    """
    from hierot.spec.loading import dump_spec, load_spec

    try:
        base = load_spec(sweep.base, sweep.budget_overrides())
    except SpecError as exc:
        lines = [f"base {sweep.base} with budget: {line}" for line in exc.lines]
        raise SweepError(lines, label) from None
    except HierotError as exc:
        raise SweepError([f"base: {exc}"], label) from None
    raw = base.model_dump(mode="json")
    try:
        problems: list[str] = metric_errors(sweep.metric, sweep.resolved_metric, base)
    except HierotError as exc:  # the base's data set or model cannot be built
        raise SweepError([f"base: {exc}"], label) from None
    if (sweep.prunes_in_training and base.train.steps is None and base.train.eval_every is None
            and "train.eval_every" not in sweep.params):
        problems.append(f"budget: pruner {sweep.pruner} on {sweep.resolved_metric} evaluates "
                        f"during "
                        f"training; the base trains by epochs, so set train.eval_every (steps)")
    for path, param in sweep.params.items():
        values = param if isinstance(param, list) else (
            param.choices if isinstance(param, ChoicesParam) else param.ends())
        for value in values:
            try:
                load_spec(raw, [override(path, value)])
            except SpecError as exc:
                problems += [f"params.{path}: value {value!r}: {line}" for line in exc.lines]
                break
    if problems:
        raise SweepError(problems, label)
    return dump_spec(base)
