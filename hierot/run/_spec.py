"""Reading the spec of an existing run directory: the run-directory boundary of the spec.

Run directories written by earlier versions hold their spec in the form of their version;
:func:`upgrade` converts it (the one converter, used by eval, plot, sample and resume through
:func:`load_run_spec`); the spec loader itself takes the current form only.

A run records in ``RUN/environment.json`` which package supplied each plug-in component it could
use (``{"divergences": {"moments": "hierot-moments 0.2.0"}}``). When such a plug-in has since
been uninstalled, the spec no longer validates; :func:`load_run_spec` then says which package and
version the run used and the ``pip`` command that brings it back, instead of only listing the
names that are installed now.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hierot.errors import SpecError
from hierot.registry import ALL
from hierot.run._layout import ENVIRONMENT, SPEC
from hierot.spec.loading import LEGACY_OBJECTIVES, load_spec, read_raw
from hierot.spec.schema import Spec


def recorded_plugins(run: str | Path) -> dict[str, dict[str, str]]:
    """``{kind: {name: "package version"}}`` from ``RUN/environment.json`` (empty when absent)."""
    try:
        recorded = json.loads((Path(run) / ENVIRONMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    plugins = recorded.get("plugins") if isinstance(recorded, dict) else None
    return plugins if isinstance(plugins, dict) else {}


def install_hint(source: str) -> str:
    """``the run used it from P V (environment.json); install it with `pip install P==V```."""
    package, _, version = source.rpartition(" ")
    where = f"the run used it from {source} ({ENVIRONMENT})"
    if not package or package == "unknown":
        return where
    return f"{where}; install it with `pip install {package}=={version}`"


def missing_plugin_lines(lines: Iterable[str], plugins: dict[str, dict[str, str]]) -> list[str]:
    """``lines`` of a :class:`SpecError`, each unknown name the run had from a plug-in explained."""
    missing = [
        (ALL[kind].kind, name, source)
        for kind, named in plugins.items() if kind in ALL and isinstance(named, dict)
        for name, source in named.items() if name not in ALL[kind]
    ]
    out = []
    for line in lines:
        for kind, name, source in missing:
            needle = f"unknown {kind} {name!r}"
            if needle in line:
                head, _, rest = line.partition(needle)
                valid = rest[rest.find("Valid: "):] if "Valid: " in rest else ""
                line = f"{head}{needle}: {install_hint(source)}. {valid}".rstrip()
                break
        out.append(line)
    return out


STALE_OPTIONS = {"sinkhorn": ("backend", "pot", ("tolerance",))}
"""Options that earlier versions wrote into every resolved spec whatever the backend, and that the
current ``sinkhorn`` refuses away from the backend they belong to when not at their (since changed)
default: ``{name: (selector, its value that uses them, options)}``. ``tolerance`` was written at
``1e-06`` for every backend until its default became ``1e-3`` (POT only)."""


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A run's spec in the current form: the one converter from earlier versions' forms.

    hierot 0.1 (before objectives were a registry) wrote ``objective: stacked`` (or ``flat``, or
    another registered name) and the lambda weights as a top-level ``weights:``; they become
    ``objective: {name: stacked-wae, weights: ...}`` (``wae`` for ``flat``). No ``objective``
    with a top-level ``weights:`` was the default ``stacked-wae``. Options that an earlier
    version wrote for a backend that does not use them (:data:`STALE_OPTIONS`) are dropped: they
    never took part in the run. Other specs are returned as they are.
    """
    cleaned = _without_stale_options(raw)
    raw = raw if cleaned == raw else cleaned  # a spec in the current form is returned as it is
    objective = raw.get("objective")
    if not (isinstance(objective, str) or "weights" in raw):
        return raw
    raw = dict(raw)
    weights = raw.pop("weights", None)
    if isinstance(objective, dict):  # the current form with a stray top-level weights:
        upgraded = dict(objective)
    else:
        name = objective if objective is not None else "stacked"
        upgraded = {"name": LEGACY_OBJECTIVES.get(name, name)}
    if weights is not None:
        upgraded["weights"] = weights
    raw["objective"] = upgraded
    return raw


def _without_stale_options(value: Any) -> Any:
    """``value`` (a spec or a part of it) with :data:`STALE_OPTIONS` removed from every component
    mapping that names a component listed there and selects another backend."""
    if isinstance(value, list):
        return [_without_stale_options(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _without_stale_options(v) for k, v in value.items()}
    name = out.get("name")
    stale = STALE_OPTIONS.get(name) if isinstance(name, str) else None
    if stale is not None:
        selector, using, options = stale
        if out.get(selector, using) != using:
            out = {k: v for k, v in out.items() if k not in options}
    return out


def load_run_spec(run: str | Path, overrides: Iterable[str] = ()) -> Spec:
    """The validated ``RUN/spec.yaml`` (with ``overrides``), like :func:`hierot.load_spec`.

    A spec written by an earlier version is converted first (:func:`upgrade`).

    Raises
    ------
    SpecError
        As :func:`hierot.load_spec`; a name supplied by a plug-in that is no longer installed is
        reported with the package and version recorded in ``RUN/environment.json``.
    """
    raw, label = read_raw(Path(run) / SPEC)
    try:
        return load_spec(upgrade(raw), overrides, label=label)
    except SpecError as exc:
        lines = missing_plugin_lines(exc.lines, recorded_plugins(run))
        if lines == exc.lines:
            raise
        raise SpecError(lines, exc.source) from None
