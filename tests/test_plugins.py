"""Entry-point plug-in discovery, on a fresh registry fed with fake entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from _fixtures import FakeDist  # tests/_fixtures.py
from pydantic import Field, TypeAdapter, ValidationError

import hierot._registry as registry_module
from hierot._registry import BUILTIN, DISABLE_ENV, Registry
from hierot.divergences import MMD
from hierot.registry import ComponentOptions

GROUP = "hierot.divergences"
ROOT = Path(__file__).resolve().parent.parent


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


# -- a real installed distribution whose module registers a built-in name on import ----------------
COLLIDE = '''
"""hierot-collide: registers a network, then a cost under the built-in name l2sq, on import."""
import torch
from hierot.registry import costs, networks


@networks.register("collide-net")
def collide_net(options, in_shape, out_shape):
    return torch.nn.Identity()


@costs.register("l2sq")
class StolenL2:
    """Not the built-in l2sq."""
'''


def install_collide(site: Path) -> None:
    """Write ``hierot_collide.py`` and its ``hierot_collide-0.1.dist-info`` into ``site``, with an
    entry point in ``hierot.networks`` (a network registry loads it before the costs are)."""
    (site / "hierot_collide.py").write_text(COLLIDE)
    info = site / "hierot_collide-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hierot-collide\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[hierot.networks]\ncollide-net = hierot_collide:collide_net\n")


def run_python(site: Path, code: str) -> subprocess.CompletedProcess:
    """A fresh interpreter (the registries are process-wide) with ``site`` on its path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    env.pop(DISABLE_ENV, None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_an_installed_plugin_registering_a_builtin_name_never_takes_it(tmp_path):
    """``hierot list`` goes on past the failed plug-in, naming it; the built-in stays."""
    install_collide(tmp_path)
    done = run_python(tmp_path, (
        "import io, json, contextlib, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from hierot.cli import main\n"
        "from hierot.registry import costs, networks\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    status = main(['list'])\n"  # networks first: their plug-in registers a cost
        "first, again = costs.get('l2sq'), costs.get('l2sq')\n"
        "print(json.dumps({'list': out.getvalue(), 'status': status, 'names': costs.names(),\n"
        "  'source': again.source, 'module': again.factory.__module__, 'same': first is again,\n"
        "  'networks': networks.names(), 'errors': networks.plugin_errors}))\n"))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["source"] == "hierot" and got["module"] == "hierot.costs" and got["same"]
    assert {"l2sq", "l1"} <= set(got["names"]) and len(got["names"]) > 2
    assert "collide-net" not in got["networks"] and "mlp" in got["networks"]
    [error] = got["errors"]
    assert "'collide-net'" in error and "hierot-collide 0.1" in error
    assert "hierot_collide:collide_net" in error and "cost 'l2sq' is already registered" in error

    listing = got["list"]
    assert got["status"] == 0
    from hierot.registry import ALL

    assert [line[:-1] for line in listing.splitlines() if not line.startswith(" ")] == list(ALL)
    assert f"  ! {error}" in listing
    costs_block = listing.split("costs:\n")[1].split("divergences:")[0]
    [l2sq] = [line for line in costs_block.splitlines() if line.split()[0] == "l2sq"]
    assert "the paper's choice" in l2sq and "[" not in l2sq  # the built-in, no plug-in source
