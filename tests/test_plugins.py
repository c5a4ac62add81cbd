"""Entry-point plug-in discovery, on a fresh registry fed with fake entry points."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import Field, TypeAdapter, ValidationError

import hierot._registry as registry_module
from hierot._registry import BUILTIN, DISABLE_ENV, Registry
from hierot.divergences import MMD
from hierot.registry import ComponentOptions

from _fixtures import FakeDist  # tests/_fixtures.py

GROUP = "hierot.divergences"


class GoodDivergence:
    """A plug-in divergence."""

    class Options(ComponentOptions):
        scale: float = Field(1.0, gt=0)

    def __init__(self, options):
        self.options = options

    def __call__(self, samples, prior_samples):
        return (samples.mean(0) - prior_samples.mean(0)).pow(2).sum() * self.options.scale


class NotPydantic:
    class Options:  # a plain class: not allowed
        pass


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    dist: FakeDist | None
    target: Any = None
    group: str = GROUP

    def load(self):
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


def good(name="good", package="good-pkg"):
    return FakeEntryPoint(name, "good_pkg:GoodDivergence", FakeDist(package, "2.0"), GoodDivergence)


def broken(name="broken"):
    error = ModuleNotFoundError("No module named 'missing_dependency'")
    return FakeEntryPoint(name, "broken_pkg:Thing", FakeDist("broken-pkg", "1.0"), error)


@pytest.fixture
def install(monkeypatch):
    """``install(*entry_points)`` -> a fresh registry that discovers exactly those plug-ins."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    calls = []

    def make(*eps: FakeEntryPoint) -> Registry:
        def entry_points(*, group):
            calls.append(group)
            return [ep for ep in eps if ep.group == group]

        monkeypatch.setattr(registry_module, "entry_points", entry_points)
        fresh = Registry("divergence", group=GROUP, builtins="hierot.divergences")
        fresh.add("mmd", MMD)  # the built-ins registered on the global registry, by hand
        fresh.calls = calls
        return fresh

    return make


def test_source_and_entry_point_recorded(install):
    registry = install(good())
    entry = registry.get("good")
    assert entry.source == "good-pkg 2.0"
    assert entry.entry_point == "good_pkg:GoodDivergence"
    assert entry.factory is GoodDivergence and entry.options is GoodDivergence.Options
    assert registry.get("mmd").source == BUILTIN
    assert registry.plugin_errors == []


def test_discovered_lazily_and_once(install):
    registry = install(good())
    assert registry.calls == []
    registry.names(), registry.get("good"), "good" in registry
    assert registry.calls == [GROUP]


def test_broken_plugin_reported_and_the_rest_works(install):
    registry = install(broken(), good())
    with pytest.warns(RuntimeWarning, match="broken"):
        names = registry.names()
    assert names == ["good", "mmd"]
    [message] = registry.plugin_errors
    assert "'broken'" in message and "broken-pkg 1.0" in message and GROUP in message
    assert "ModuleNotFoundError" in message and "missing_dependency" in message


def test_plugin_may_not_reuse_a_builtin_name(install):
    registry = install(good(name="mmd", package="evil-pkg"))
    with pytest.warns(RuntimeWarning):
        registry.names()
    assert registry.get("mmd").source == BUILTIN and registry.get("mmd").factory is MMD
    [message] = registry.plugin_errors
    assert "evil-pkg" in message and "built in" in message


def test_two_plugins_may_not_share_a_name(install):
    registry = install(good(), good(package="other-pkg"))
    with pytest.warns(RuntimeWarning):
        registry.names()
    assert registry.get("good").source == "good-pkg 2.0"
    [message] = registry.plugin_errors
    assert "other-pkg" in message and "already registered" in message


def test_options_must_be_pydantic(install):
    registry = install(FakeEntryPoint("plain", "p:NotPydantic", FakeDist("p", "0"), NotPydantic))
    with pytest.warns(RuntimeWarning):
        assert "plain" not in registry
    assert "pydantic" in registry.plugin_errors[0]


@pytest.mark.parametrize("blocked", ["broken", f"{GROUP}:broken", "broken-pkg", " other , broken "])
def test_disable_env_blocks_a_plugin(install, monkeypatch, blocked):
    registry = install(broken(), good())
    monkeypatch.setenv(DISABLE_ENV, blocked)
    assert registry.names() == ["good", "mmd"]
    assert registry.plugin_errors == []  # never even loaded


def test_missing_distribution_is_named_unknown(install):
    registry = install(FakeEntryPoint("orphan", "o:G", None, GoodDivergence))
    assert registry.get("orphan").source == "unknown package"


def test_plugin_options_validated_like_builtins(install):
    registry = install(good())
    adapter = TypeAdapter(registry.options_union())
    options = adapter.validate_python({"name": "good", "scale": 2.0})
    assert options.scale == 2.0 and registry.build(options) is not None
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "good", "scale": -1.0})
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "good", "unknown": 1})


def test_plugin_that_also_self_registers_is_recorded_once_with_its_package(monkeypatch):
    """A plug-in module decorated with ``register`` is the same entry, not a clash."""
    from hierot._registry import Registry

    registry = Registry("divergence", group="hierot.divergences")

    class SelfRegistering:
        def __init__(self, options):
            pass

    class FakeDist:
        name, version = "hierot-self", "1.0"

    class FakeEntryPoint:
        name, value, dist = "self-reg", "hierot_self:SelfRegistering", FakeDist()

        def load(self):
            registry.add("self-reg", SelfRegistering)  # what @register does on import
            return SelfRegistering

    monkeypatch.setattr("hierot._registry.entry_points", lambda group: [FakeEntryPoint()])
    assert registry.names() == ["self-reg"]
    assert registry.get("self-reg").source == "hierot-self 1.0"
    assert registry.plugin_errors == []


def test_plugin_that_calls_sys_exit_on_import_is_reported_like_any_broken_one(
    install, tmp_path, monkeypatch
):
    """A real module whose import calls ``sys.exit``, loaded through its entry point."""
    (tmp_path / "exiting_plugin.py").write_text(
        "import sys\nprint('exiting_plugin: bye')\nsys.exit(3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "exiting_plugin", raising=False)
    real = EntryPoint("exiting", "exiting_plugin:Divergence", GROUP)
    exiting = FakeEntryPoint("exiting", real.value, FakeDist("exiting-pkg", "0.3"))
    exiting.load = real.load
    registry = install(exiting, good())
    with pytest.warns(RuntimeWarning, match="exiting"):
        names = registry.names()
    assert names == ["good", "mmd"]
    [message] = registry.plugin_errors
    assert "'exiting'" in message and "exiting-pkg 0.3" in message
    assert "called sys.exit(3)" in message
