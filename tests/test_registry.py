"""The registries: lookup, duplicates, unknown names, and a sweep over every entry."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from hierot.errors import DuplicateNameError, HierotError, PluginError, UnknownNameError
from hierot.registry import ALL, ComponentOptions, Registry


def test_unknown_name_lists_valid_names_and_close_matches():
    from hierot.registry import costs

    with pytest.raises(UnknownNameError) as info:
        costs.get("l2sqq")
    message = str(info.value)
    assert "did you mean 'l2sq'" in message
    for name in costs.names():
        assert name in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, HierotError)


def test_duplicate_name_is_an_error():
    registry = Registry("thing")
    registry.add("a", lambda options: 1)
    with pytest.raises(DuplicateNameError, match="'a' is already registered"):
        registry.add("a", lambda options: 2)
    assert registry.get("a").factory(None) == 1


def test_register_decorator_takes_the_options_model():
    registry = Registry("thing")

    class ScaledOptions(ComponentOptions):
        factor: float = 2.0

    @registry.register("scaled", options=ScaledOptions)
    class Scaled:
        def __init__(self, options):
            self.factor = options.factor

    options = registry.tagged_options("scaled")(name="scaled", factor=3.0)
    assert registry.build(options).factor == 3.0
    assert registry.find("sc*") == ["scaled"]
    assert "scaled" in registry and len(registry) == 1


@pytest.mark.parametrize("kind", list(ALL))
def test_every_entry_is_documented_and_has_an_options_model(kind):
    registry = ALL[kind]
    assert registry.names(), f"no built-in {kind}"
    for entry in registry.entries():
        assert issubclass(entry.options, BaseModel)
        assert entry.summary, f"{kind} {entry.name!r} has no docstring"
        if kind != "presets":
            tagged = registry.tagged_options(entry.name)
            assert tagged.model_config.get("extra") == "forbid"
            assert tagged.model_config.get("frozen") is True


@pytest.mark.parametrize("name", ALL["networks"].names())
def test_every_network_maps_shapes_and_returns_gaussians(name):
    import torch

    from hierot.distributions import Gaussian
    from hierot.registry import networks

    options = networks.tagged_options(name)(name=name)
    for head in ("gaussian", "deterministic"):
        net = networks.build(options, in_shape=(1, 8, 8), out_shape=(4,), head=head)
        out = net(torch.rand(5, 1, 8, 8))
        assert isinstance(out, Gaussian)
        assert out.mean.shape == (5, 4)
        assert out.deterministic == (head == "deterministic")


def test_options_are_declared_at_registration_only():
    """One way to declare options: an ``Options`` attribute on a factory is refused, not guessed."""
    registry = Registry("thing")

    class Nested:
        class Options(ComponentOptions):
            factor: float = 2.0

    with pytest.raises(PluginError, match=r"register\('nested', options=...\)"):
        registry.register("nested")(Nested)
    assert "nested" not in registry
