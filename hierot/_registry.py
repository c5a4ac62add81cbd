"""Registries: one per kind of component, filled by built-ins and by entry-point plug-ins.

A registry maps a name (``"mmd"``) to an :class:`Entry`: a factory, the pydantic model of its
options, and where it came from. Built-ins are imported on first use; plug-ins are read once,
lazily, from ``importlib.metadata.entry_points(group="hierot.<kind>")``. A duplicate name is an
error, a plug-in may not take a built-in's name, and an unknown name is answered with the valid
names and the closest matches.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from importlib.resources import files
from typing import Annotated, Any, Literal, Union, cast

import yaml
from pydantic import AfterValidator, BaseModel, Discriminator, Tag, ValidationError, create_model

from hierot._docstrings import plain_text
from hierot._yaml import parse_yaml
from hierot.components import ComponentOptions, NoOptions
from hierot.errors import DuplicateNameError, HierotError, PluginError, UnknownNameError

BUILTIN = "hierot"
DISABLE_ENV = "HIEROT_DISABLE_PLUGINS"


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    name: str
    factory: Callable[..., Any]
    options: type[ComponentOptions]
    source: str = BUILTIN
    """``"hierot"`` for built-ins, else the distribution (``"hierot-energy 0.1.0"``)."""
    entry_point: str | None = None

    @property
    def summary(self) -> str:
        """The first paragraph of the factory's docstring (its first sentence, however wrapped)
        on one line, as plain text (roles and LaTeX rewritten)."""
        doc = (getattr(self.factory, "__doc__", None) or "").strip()
        paragraph = doc.split("\n\n")[0]
        return plain_text(" ".join(line.strip() for line in paragraph.splitlines()))




def _from_hierot(factory: Any) -> bool:
    """Whether ``factory`` is defined in hierot itself (a built-in)."""
    return (getattr(factory, "__module__", None) or "").partition(".")[0] == "hierot"


class Registry:
    """Name -> component for one kind (networks, costs, divergences, ...).

    Parameters
    ----------
    kind:
        Singular noun used in messages (``"divergence"``).
    builtins:
        Module imported on first use; importing it registers the built-in components.
    group:
        Entry-point group of plug-ins, ``None`` for a registry without plug-ins.
    key:
        The field that names the entry in a spec (``"name"``; the lambda schedules of
        ``objective.weights`` are chosen by ``"schedule"``).
    """

    def __init__(
        self, kind: str, *, builtins: str | None = None, group: str | None = None,
        key: str = "name",
    ):
        self.kind = kind
        self.group = group
        self.key = key
        self.version = 0
        """Counts changes (add, remove): caches of models built from the registry key on it."""
        self._builtins = builtins
        self._entries: dict[str, Entry] = {}
        self._tagged: dict[str, type[ComponentOptions]] = {}
        self._loaded = False
        self._builtins_state = "absent" if builtins is None else "pending"
        """``pending`` -> ``loading`` (its module is being imported) -> ``loaded``."""
        self.plugin_errors: list[str] = []
        """Messages of plug-ins that failed to load (each names the entry point and package)."""

    # -- registration --------------------------------------------------------------------------
    def register(
        self, name: str | None = None, *, options: type[ComponentOptions] | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a factory (a class or function) under ``name``.

        ``options`` is the pydantic model of its options (a :class:`ComponentOptions` subclass;
        omitted: the component takes none). This is the one way to declare a component's options.
        """

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name or factory.__name__, factory, options=options)
            return factory

        return decorator

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        options: type[ComponentOptions] | None = None,
        source: str = BUILTIN,
        entry_point: str | None = None,
    ) -> Entry:
        """Register ``factory`` under ``name``; a taken name raises :class:`DuplicateNameError`.

        ``options`` as in :meth:`register`. A factory that carries its own ``Options`` attribute
        is refused unless ``options`` is given: options are declared at registration only.

        The built-ins are registered before anything else: a registration from outside the
        built-in package (a plug-in's module registering itself on import, possibly while
        another registry loads its plug-ins) first imports them, so it can never take a
        built-in's name, nor make the built-in's own registration fail later.
        """
        self._ensure_builtins()
        if source == BUILTIN and self._builtins_state == "loaded" and not _from_hierot(factory):
            source = f"module {getattr(factory, '__module__', '?')}"
        if options is None and hasattr(factory, "Options"):
            raise PluginError(
                f"{self.kind} {name!r}: declare its options at registration, "
                f"register({name!r}, options=...), not as an Options attribute"
            )
        if name in self._entries:
            other = self._entries[name]
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered (by {other.source}); "
                f"choose another name (a plug-in may not reuse a built-in's)"
            )
        options = options or NoOptions
        if not (isinstance(options, type) and issubclass(options, BaseModel)):
            raise PluginError(f"{self.kind} {name!r}: options must be a pydantic model class")
        entry = Entry(name, factory, options, source, entry_point)
        self._entries[name] = entry
        self.version += 1
        return entry

    def add_yaml_files(self, package: str) -> None:
        """Register every ``NAME.yaml`` shipped in ``package`` under ``NAME``.

        The factory returns the file's text; its summary is the file's ``description``. Used by
        the built-in presets and sweep presets, which are plain YAML read through
        :mod:`importlib.resources`.
        """
        folder = files(package)

        def reader(name: str) -> str:
            return folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8")

        for resource in sorted(folder.iterdir(), key=lambda r: r.name):
            if resource.name.endswith(".yaml"):
                name = resource.name.removesuffix(".yaml")
                factory = partial(reader, name)
                factory.__doc__ = parse_yaml(reader(name)).get("description", "")
                self.add(name, factory)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (for tests and interactive sessions)."""
        self._entries.pop(name, None)
        self._tagged.pop(name, None)
        self.version += 1

    # -- lookup ----------------------------------------------------------------------------------
    def _ensure_builtins(self) -> None:
        """Import the built-in package once (re-entrant: it registers into this registry)."""
        if self._builtins_state != "pending":
            return
        self._builtins_state = "loading"
        try:
            importlib.import_module(self._builtins)  # type: ignore[arg-type]
        except BaseException:
            self._builtins_state = "pending"
            raise
        self._builtins_state = "loaded"

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._ensure_builtins()
        if self._builtins_state == "loading":
            return  # a lookup from inside the built-in package: plug-ins come after it
        self._loaded = True
        if self.group:
            self._load_plugins(self.group)

    def _load_plugins(self, group: str) -> None:
        builtin_names = set(self._entries)
        blocked = {b.strip() for b in os.environ.get(DISABLE_ENV, "").split(",") if b.strip()}
        for ep in entry_points(group=group):
            dist = ep.dist
            source = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
            if {ep.name, f"{group}:{ep.name}", dist.name if dist else ""} & blocked:
                continue
            where = f"entry point {ep.name!r} ({ep.value}) of {source}, group {group}"
            before = set(self._entries)
            options: type[ComponentOptions] | None
            try:
                factory = ep.load()
                existing = self._entries.get(ep.name)
                self_registered = (existing is not None and existing.factory is factory
                                   and existing.entry_point is None and not _from_hierot(factory))
                if self_registered and existing is not None:
                    # the plug-in's module registered itself on import (the one way to declare
                    # its options): keep them, and record where it came from
                    del self._entries[ep.name]
                    options = existing.options
                elif ep.name in builtin_names:
                    raise PluginError(f"{self.kind} {ep.name!r} is built in; "
                                      f"a plug-in may not reuse it")
                else:
                    # a factory its module does not register: hierot 0.1 plug-ins carried their
                    # options as an ``Options`` attribute, still read here (and only here)
                    options = getattr(factory, "Options", None)
                self.add(ep.name, factory, options=options, source=source, entry_point=ep.value)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 a broken plug-in must not break the rest
                what = (f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit)
                        else f"{type(exc).__name__}: {exc}")
                message = f"{where} failed to load: {what}"
                for name in set(self._entries) - before:  # what the failed import registered
                    self.remove(name)
                self.plugin_errors.append(message)
                warnings.warn(message, RuntimeWarning, stacklevel=2)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; an unknown name lists the valid ones."""
        self._ensure_loaded()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self._entries) from None

    def names(self) -> list[str]:
        """Sorted names of every registered component."""
        self._ensure_loaded()
        return sorted(self._entries)

    def find(self, pattern: str) -> list[str]:
        """Names matching a shell-style pattern (``"*sinkhorn*"``)."""
        return [n for n in self.names() if fnmatch.fnmatch(n, pattern)]

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # -- spec integration ----------------------------------------------------------------------
    def tagged_options(self, name: str) -> type[ComponentOptions]:
        """The entry's options model with a ``name: Literal[name]`` field added.

        (The field is :attr:`key`, ``name`` unless the registry says otherwise.) A field of the
        options declared with :func:`choice` becomes the union of its registry's options, so a
        plug-in's options nested in a built-in's (a learning-rate schedule inside the optimizer)
        are validated like a built-in's.
        """
        entry = self.get(name)
        nested = _choice_fields(entry.options)
        stamp = (id(entry.options), tuple(r.version for r, _ in nested.values()))
        cached = self._tagged.get(name)
        if cached is None or cached.__hierot_stamp__ != stamp:  # type: ignore[attr-defined]
            fields: dict[str, Any] = {self.key: (Literal[name], ...)}
            for field, (registry, info) in nested.items():
                fields[field] = (registry.options_union(), info)
            # a subclass of entry.options (pydantic's type-checker plug-in types it BaseModel)
            tagged = cast(type[ComponentOptions], create_model(
                f"{entry.options.__name__}[{name}]", __base__=entry.options, **fields))
            tagged.__doc__ = entry.options.__doc__
            tagged.__hierot_stamp__ = stamp  # type: ignore[attr-defined]
            self._tagged[name] = tagged
        return self._tagged[name]

    def make_options(self, name: str, /, **fields: Any) -> ComponentOptions:
        """Validated options of entry ``name``: ``make_options("cosine", warmup_steps=5)``.

        Validated as Python values (not strictly, as the spec is): for code and tests; a spec
        goes through :func:`hierot.spec.validate_spec`.
        """
        return self.tagged_options(name).model_validate({**fields, self.key: name})

    def options_union(self, default: str | None = None) -> Any:
        """A discriminated union (on ``name``) of every entry's options, plug-ins included.

        ``default`` is the entry chosen when the mapping names none (the optimizer's ``adam``).
        """
        models = tuple(self.tagged_options(n) for n in self.names())
        if not models:
            return Annotated[Any, AfterValidator(self._none_registered)]
        if default is not None:
            models = tuple(self._defaulted(m) if n == default else m
                           for n, m in zip(self.names(), models))
            tagged = tuple(Annotated[m, Tag(n)] for n, m in zip(self.names(), models))

            def tag(value: Any) -> Any:
                if isinstance(value, dict):
                    return value.get(self.key, default)
                return getattr(value, self.key, None)

            return Annotated[Union[tagged], Discriminator(tag)]  # noqa: UP007
        if len(models) == 1:
            return models[0]
        return Annotated[Union[models], Discriminator(self.key)]  # noqa: UP007

    def _defaulted(self, model: type[ComponentOptions]) -> type[ComponentOptions]:
        """``model`` (tagged) whose name field may be left out."""
        name = model.model_fields[self.key].annotation.__args__[0]  # type: ignore[union-attr]
        fields: dict[str, Any] = {self.key: (Literal[name], name)}
        derived = create_model(model.__name__, __base__=model, **fields)
        derived.__doc__ = model.__doc__
        return derived

    def _none_registered(self, value: Any) -> Any:
        raise ValueError(f"no {self.kind} is registered")

    def build(self, options: ComponentOptions, /, **context: Any) -> Any:
        """Call the factory named by ``options.name`` with the options and ``context``."""
        return self.get(getattr(options, self.key)).factory(options, **context)

    def parse(self, text: str | Mapping[str, Any], *, label: str | None = None) -> ComponentOptions:
        """Options of one entry from a name (``gmm``) or a YAML mapping (``{name: gmm, k: 20}``),
        as a command-line option gives them.

        Raises
        ------
        HierotError
            For text that is not YAML, an unknown name (with the valid ones) or invalid options
            (naming the field); ``label`` (default: the kind) starts the message.
        """
        label = label or self.kind
        try:
            raw = parse_yaml(text) if isinstance(text, str) else dict(text)
        except yaml.YAMLError as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise HierotError(f"{label}: {text!r} is not valid YAML ({first_line}); give a name "
                              f"or a mapping such as {{{self.key}: ...}}; known: {self.names()}"
                              ) from None
        if isinstance(raw, str):
            raw = {self.key: raw}
        if not isinstance(raw, dict) or self.key not in raw:
            raise HierotError(f"{label}: expected a name or a mapping with `{self.key}`, got "
                              f"{text!r}; known: {self.names()}")
        try:
            return self.tagged_options(str(raw[self.key]))(**raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors())
            raise HierotError(f"{label} {raw[self.key]}: {problems}") from None


@dataclass(frozen=True)
class _Choice:
    """Marks a field of an options model as a choice from ``registry`` (see :func:`choice`)."""

    registry: Registry


def choice(registry: Registry) -> Any:
    """The type of an options field that holds a component of another registry.

    ``schedule: choice(lr_schedules) = Field(default_factory=lambda: {"name": "constant"},
    validate_default=True)``: when the options are tagged for the spec the field becomes the
    union over ``registry`` as it is then, plug-ins included.
    """
    return Annotated[Any, _Choice(registry)]


def _choice_fields(model: type[BaseModel]) -> dict[str, tuple[Registry, Any]]:
    """The fields of ``model`` declared with :func:`choice`: name -> (registry, field info)."""
    found = {}
    for field, info in model.model_fields.items():
        for mark in info.metadata:
            if isinstance(mark, _Choice):
                found[field] = (mark.registry, info)
    return found
