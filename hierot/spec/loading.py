"""Reading specs: YAML files or preset names, ``--set`` overrides, and readable errors.

Every problem in a spec is reported at once, one ``path.to.field: message`` line each, as a
:class:`hierot.errors.SpecError` (the first :data:`~hierot.errors.MAX_REPORTED` of them, and how
many more). YAML is read by :func:`hierot._yaml.parse_yaml`: ``1e-3`` is a number (YAML 1.2), and
a key given twice in one mapping is refused, naming the key and both lines, rather than letting
the last one win silently.
"""

from __future__ import annotations

import copy
import itertools
import logging
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hierot._yaml import DuplicateKeyError, RefusedTagError, parse_yaml
from hierot.errors import MAX_REPORTED, HierotError, SpecError, unknown_name_message
from hierot.registry import ALL, presets
from hierot.spec import _messages
from hierot.spec._checks import spec_warnings
from hierot.spec.schema import Spec, validate_spec

_log = logging.getLogger(__name__)

_KIND_OF_FIELD = {
    "encoder": "network", "decoder": "network", "cost": "cost", "divergence": "divergence",
    "penalties": "penalty", "data": "dataset", "objective": "objective", "callbacks": "callback",
    "optimizer": "optimizer", "schedule": "lr schedule", "weights": "lambda schedule",
}


MAX_SPEC_BYTES = 256 * 1024
"""Largest spec file read. Specs are hand-written documents of a few KB (the presets are 1-3 KB);
a larger file is almost surely the wrong file, and PyYAML would take seconds per MB on it."""


def read_text(source: str | Path) -> tuple[str, str]:
    """The YAML text of a spec file or preset, and a label for messages."""
    path = Path(source)
    if path.is_file():
        label = str(path)
        try:
            size = path.stat().st_size
            if size > MAX_SPEC_BYTES:
                raise SpecError(
                    [(f"{size / 2**20:.1f} MiB is not a spec: specs are small YAML files (the "
                     f"presets are a few KB); files over {MAX_SPEC_BYTES // 1024} KiB "
                     f"are refused")],
                    label,
                )
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                 "save the spec as UTF-8")], label,
            ) from None
        except OSError as exc:
            raise HierotError(f"cannot read {path}: {exc.strerror}") from None
    elif str(source) in presets:
        text, label = presets.get(str(source)).factory(), f"preset {source}"
    else:
        message = unknown_name_message("preset", str(source), presets.names())
        raise HierotError(f"{source!r} is neither a spec file nor a preset"
                          + message.removeprefix(f"unknown preset {str(source)!r}"))
    return text, label


def read_raw(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The raw mapping of a spec and a label for messages: a mapping, a YAML file or a preset."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), "<mapping>"
    text, label = read_text(source)
    try:
        raw = parse_yaml(text)
    except (DuplicateKeyError, RefusedTagError) as exc:
        raise SpecError([str(exc)], label) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"not valid YAML: {exc}"], label) from None
    if not isinstance(raw, dict):
        raise SpecError([f"the top level must be a mapping, got {type(raw).__name__}"], label)
    return raw, label


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.0.c=value`` overrides (values parsed as YAML) to a copy of ``raw``.

    ``weights.X`` is short for ``objective.weights.X`` (the lambda weights of the WAE objectives,
    a top-level field before 0.2.0, as sweeps and benchmarks still name them).

    Setting a component's ``name`` to another name (``divergence.name=sinkhorn``) switches the
    component: the old one's options are dropped, since they belong to it, and a one-line notice
    saying which goes to the ``hierot.spec.loading`` logger (stderr unless logging is configured).
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep or not path:
            raise SpecError([f"--set {item!r}: expected KEY.PATH=VALUE"])
        if path == "weights" or path.startswith("weights."):
            path = f"objective.{path}"  # shorthand for the WAE objectives' lambda weights
            if "objective" not in raw:
                raw["objective"] = {"name": "stacked-wae"}  # the default objective
        try:
            value = parse_yaml(text)
        except yaml.YAMLError as exc:
            raise SpecError([f"--set {path}: value is not valid YAML: {exc}"]) from None
        keys = path.split(".")
        if "" in keys:
            raise SpecError([(f"--set {item}: {path!r} has an empty key (a doubled, leading or "
                              f"trailing dot); write KEY.PATH=VALUE, e.g. train.steps=5")])
        node: Any = raw
        for depth, part in enumerate(keys):
            last = depth == len(keys) - 1
            where = ".".join(keys[: depth + 1])
            key: str | int = part
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise SpecError([(f"--set {path}: {where} is not an index of a "
                                      f"{len(node)}-item list")])
                key = int(part)
            elif not isinstance(node, dict):
                raise SpecError([f"--set {path}: {'.'.join(keys[:depth])} is not a mapping"])
            if last and key == "name" and isinstance(node, dict) and _switches(node, value):
                dropped = sorted(k for k in node if k != "name")
                _log.warning(
                    "--set %s=%s: switches %s from %r to %r and drops the old options (%s)",
                    path, text, ".".join(keys[:-1]), node["name"], value, ", ".join(dropped))
                node.clear()
                node[key] = value
            elif last:
                node[key] = value
            else:
                if isinstance(node, dict) and key not in node:
                    node[key] = {}
                node = node[key]
    return raw


def _switches(component: dict[str, Any], name: Any) -> bool:
    """Whether setting ``name`` replaces a different component that has options of its own."""
    return "name" in component and component["name"] != name and len(component) > 1


def _strip_tags(loc: tuple, raw: Any) -> list[str]:
    """Drop the discriminator tags pydantic puts in error locations (``divergence.mmd.blur``)."""
    parts, node = [], raw
    for k, item in enumerate(loc):
        tag = node.get("name", node.get("schedule")) if isinstance(node, dict) else None
        if isinstance(node, dict) and item not in node and (tag == item or k < len(loc) - 1):
            continue  # the union's tag (maybe a default one), not a field: a missing one is last
        parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return parts


def format_errors(error: ValidationError, raw: Any, limit: int | None = None) -> list[str]:
    """One ``path: message`` line per error (the first ``limit``), unknown names answered with
    close matches, and no validator internals (:mod:`hierot.spec._messages`)."""
    errors = list(itertools.islice(error.errors(include_url=False), limit))
    lines, covered = _messages.union_lines(
        errors, lambda loc: ".".join(_strip_tags(loc, raw)) or "<spec>")
    for index, err in enumerate(errors):
        if index in covered or _messages.redundant(err, errors):
            continue
        parts = _strip_tags(err["loc"], raw)
        field = next((p for p in reversed(parts) if not p.isdigit() and p != "name"), "")
        kind = _KIND_OF_FIELD.get(field)
        message = err["msg"]
        if err["type"] in ("union_tag_invalid", "literal_error") and kind and (
            err["type"] == "union_tag_invalid" or parts[-1] == "name"
        ):
            registry = ALL[next(k for k in ALL if ALL[k].kind == kind)]
            name = err["ctx"]["tag"] if err["type"] == "union_tag_invalid" else err["input"]
            message = unknown_name_message(kind, name, registry.names())
            parts = [*parts, registry.key] if parts[-1] != registry.key else parts
        elif err["type"] == "union_tag_invalid":
            message = _messages.unknown_tag(err, field)
            tag = err["ctx"]["discriminator"].strip("'\"")
            parts = [*parts, tag]
        elif err["type"] == "union_tag_not_found":
            message = f"missing 'name' (or 'schedule'): {err['msg']}"
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif err["type"] == "too_short" and isinstance(err["input"], (list, tuple)):
            least = err["ctx"]["min_length"]
            message = (f"needs at least {least} item{'s' if least > 1 else ''}, "
                       f"got {len(err['input'])}")
        lines.append(f"{'.'.join(parts) or '<spec>'}: {message}")
    return lines


MAX_VALUES = 1_000_000
"""Most values a spec may expand to: YAML aliases can make a small file a huge document."""


def _too_large(raw: Any, limit: int = MAX_VALUES) -> bool:
    """Whether ``raw`` holds more than ``limit`` values, counting a shared (aliased) one each
    time it is reached, as validation would."""
    stack, seen = [raw], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return False


LEGACY_OBJECTIVES = {"stacked": "stacked-wae", "flat": "wae"}
"""Objective names of hierot 0.1's spec form, and the registered objective each was."""


def legacy_form_errors(raw: dict[str, Any]) -> list[str]:
    """Lines saying what to write instead of the spec form removed in 0.2.0 (none if canonical).

    ``objective: stacked`` (a bare name) and a top-level ``weights:`` were hierot 0.1's form;
    run directories written in it still load, converted by :func:`hierot.run.upgrade`.
    """
    objective, lines = raw.get("objective"), []
    if isinstance(objective, str):
        name = LEGACY_OBJECTIVES.get(objective, objective)
        lines.append(f"objective: a bare name is hierot 0.1's form (removed in 0.2.0); write "
                     f"objective: {{name: {name}, weights: {{...}}}} (see CHANGELOG.md)")
    if "weights" in raw:
        lines.append("weights: a top-level weights: is hierot 0.1's form (removed in 0.2.0); "
                     "move it into the objective, objective: {name: stacked-wae, weights: "
                     "{schedule: ...}} (see CHANGELOG.md)")
    return lines


def load_spec(
    source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (), *,
    label: str | None = None,
) -> Spec:
    """Read, override and validate a spec; every problem is reported in one :class:`SpecError`.

    Parameters
    ----------
    source:
        A YAML file, a preset name (``"mnist-stackedwae.v1"``) or a mapping.
    overrides:
        ``"a.b=value"`` strings, as ``hierot train --set`` takes them.
    label:
        The source's name in messages (default: the file or preset; ``<mapping>``).
    """
    raw, read_label = read_raw(source)
    label = label or read_label
    raw = apply_overrides(raw, overrides)
    if _too_large(raw):
        raise SpecError(
            [f"<spec>: expands to more than {MAX_VALUES:,} values (through YAML aliases?)"], label
        )
    legacy = legacy_form_errors(raw)
    if legacy:
        raise SpecError(legacy, label)
    try:
        spec = validate_spec(raw)
    except ValidationError as exc:
        more = max(exc.error_count() - MAX_REPORTED, 0)
        raise SpecError(format_errors(exc, raw, MAX_REPORTED), label, more) from None
    problems = spec.consistency_errors()
    if problems:
        raise SpecError(problems, label)
    warmup = getattr(spec.optimizer.schedule, "warmup_steps", 0) or 0
    for line in spec_warnings(spec.data, batch_size=spec.train.batch_size, steps=spec.train.steps,
                              epochs=spec.train.epochs, warmup_steps=warmup):
        warnings.warn(line, UserWarning, stacklevel=2)
    return spec


def dump_spec(spec: Spec) -> str:
    """The resolved spec as YAML (every default filled in), loadable by :func:`load_spec`."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
