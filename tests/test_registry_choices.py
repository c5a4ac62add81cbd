"""Samplers, optimizers, learning-rate and lambda schedules: registries with the one contract.

Each is listed by ``hierot list``, recorded in ``environment.json``, open to entry-point plug-ins
whose options are validated (nested ones too) exactly like a built-in's; and the specs valid
before they became registries still resolve identically (every shipped preset, against the
resolved specs hierot 0.1.0 wrote, ``tests/data/presets_resolved_0.1.0.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import Field

import hierot
from hierot import _registry as registry_module
from hierot.builder import build_optimizer
from hierot.cli import main
from hierot.errors import HierotError, SpecError
from hierot.objectives.weights import LambdaScheduleOptions
from hierot.optimizers import OptimizerOptions
from hierot.registry import ALL, lambda_schedules, lr_schedules, optimizers, presets, samplers
from hierot.run import environment
from hierot.samplers import parse_sampler
from hierot.schedules import LRSchedule, ScheduleOptions, build_scheduler

DATA = Path(__file__).parent / "data"
TINY = {
    "data": {"name": "digits"},
    "layers": [{"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
                "decoder": {"name": "mlp", "hidden": [8]}}],
    "train": {"batch_size": 8, "steps": 2, "progress": False},
}
NEW_KINDS = ("optimizers", "lr_schedules", "lambda_schedules", "samplers")


# -- plug-ins of each new kind, found through fake entry points -------------------------------
class HalvingOptions(OptimizerOptions):
    """A plug-in optimiser's own option beside the shared ones."""

    halve_every: int = Field(1, ge=1)


def halving_sgd(options, parameters, **kernels):
    """SGD at half the learning rate (a plug-in optimiser)."""
    return torch.optim.SGD(parameters, lr=options.lr / 2, **kernels)


class PlateauOptions(ScheduleOptions):
    level: float = Field(0.5, gt=0, le=1)


class Plateau(LRSchedule):
    """lr times ``level`` after the warm-up (a plug-in schedule)."""

    def after_warmup(self, k, span, t):
        return self.options.level


class FlatOptions(LambdaScheduleOptions):
    value: float = Field(1.0, gt=0)


def flat(options, latent_dims):
    """Every term weighted ``value`` (a plug-in lambda schedule)."""
    return [options.value] * len(latent_dims), options.value


class Zeros:
    """z_N = 0 (a plug-in sampler)."""

    needs_codes = False

    def __init__(self, options):
        self.options = options

    def fit(self, codes, seed=0):
        self.shape = tuple(codes.shape[1:])
        return self

    def sample(self, n, generator):
        return torch.zeros((n, *self.shape))


PLUGINS = {  # group: (registry, name, factory, options)
    "hierot.optimizers": (optimizers, "halving-sgd", halving_sgd, HalvingOptions),
    "hierot.lr_schedules": (lr_schedules, "plateau", Plateau, PlateauOptions),
    "hierot.lambda_schedules": (lambda_schedules, "flat", flat, FlatOptions),
    "hierot.samplers": (samplers, "zeros", Zeros, None),
}


class FakeDist:
    name, version = "choices-pkg", "0.1"


class FakeEntryPoint:
    def __init__(self, group):
        self.group = group
        self.name = PLUGINS[group][1]
        self.value = f"choices_pkg:{self.name}"
        self.dist = FakeDist()

    def load(self):
        """Import the plug-in's module, which registers its factory with its options."""
        registry, name, factory, options = PLUGINS[self.group]
        if name not in registry._entries:
            registry.register(name, options=options)(factory)
        return factory


@pytest.fixture
def plugins(monkeypatch):
    """The four registries re-discovering plug-ins from one fake entry point each."""
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda *, group: [FakeEntryPoint(group)] if group in PLUGINS else [])
    monkeypatch.delenv(registry_module.DISABLE_ENV, raising=False)
    for registry, *_ in PLUGINS.values():
        registry._ensure_loaded()  # the built-ins first, as in a fresh process
        builtins = {k: v for k, v in registry._entries.items() if v.source == "hierot"}
        monkeypatch.setattr(registry, "_entries", builtins)
        monkeypatch.setattr(registry, "_tagged", {})
        monkeypatch.setattr(registry, "_loaded", False)
        monkeypatch.setattr(registry, "version", registry.version + 1000)


def test_the_new_kinds_are_registries_listed_and_documented(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for kind, names in {"optimizers": ["adam", "adamw", "sgd", "rmsprop"],
                        "lr_schedules": ["constant", "cosine", "linear", "step"],
                        "lambda_schedules": ["explicit", "paper-mnist", "paper-svhn"],
                        "samplers": ["prior", "gmm", "empirical"]}.items():
        assert f"{kind}:" in listed
        assert set(names) <= set(ALL[kind].names())
        assert ALL[kind].group == f"hierot.{kind}"


def test_plugins_of_every_new_kind_are_listed_and_recorded(plugins, capsys):
    assert main(["list", "optimizers"]) == 0
    assert "halving-sgd" in capsys.readouterr().out
    recorded = environment()["plugins"]
    for group, (registry, name, *_) in PLUGINS.items():
        kind = group.removeprefix("hierot.")
        assert recorded[kind] == {name: "choices-pkg 0.1"}
        assert registry.get(name).entry_point == f"choices_pkg:{name}"


def test_plugin_optimizer_and_schedule_validate_and_build_like_builtins(plugins):
    spec = hierot.load_spec(TINY, [
        "optimizer={name: halving-sgd, lr: 0.2, halve_every: 3}",
        "optimizer.schedule={name: plateau, warmup_steps: 1, level: 0.25}",
    ])
    assert spec.optimizer.halve_every == 3 and spec.optimizer.schedule.level == 0.25
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = build_optimizer(spec.optimizer, params)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.1
    scheduler = build_scheduler(spec.optimizer.schedule, optimizer, total=5)
    lrs = []
    for _ in range(3):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.025, 0.025])  # warm-up step 1, then the plateau
    with pytest.raises(SpecError, match=r"optimizer\.halve_every"):
        hierot.load_spec(TINY, ["optimizer={name: halving-sgd, halve_every: 0}"])
    with pytest.raises(SpecError, match=r"optimizer\.schedule\.level"):  # nested in adam's options
        hierot.load_spec(TINY, ["optimizer.schedule={name: plateau, level: 2}"])


def test_plugin_lambda_schedule_weighs_the_objective(plugins):
    flat_weights = "objective={name: stacked-wae, weights: {schedule: flat, value: 0.5}}"
    spec = hierot.load_spec(TINY, [flat_weights])
    assert spec.resolved_weights() == ([0.5], 0.5)
    with pytest.raises(SpecError, match=r"objective\.weights\.value"):
        hierot.load_spec(TINY, ["objective={name: wae, weights: {schedule: flat, value: -1}}"])
    with pytest.raises(SpecError, match=r"unknown lambda schedule 'flt'.*did you mean 'flat'"):
        hierot.load_spec(TINY, ["objective={name: wae, weights: {schedule: flt}}"])


def test_plugin_sampler_is_parsed_and_fitted(plugins):
    options = parse_sampler("zeros")
    sampler = samplers.build(options).fit(torch.empty(0, 3))
    assert torch.equal(sampler.sample(4, torch.Generator()), torch.zeros(4, 3))
    with pytest.raises(HierotError, match="unknown sampler 'zeross'"):
        parse_sampler("zeross")


def test_unknown_builtin_choices_name_the_field_and_the_valid_names():
    with pytest.raises(SpecError, match=r"optimizer\.name: unknown optimizer 'adamm'.*adamw"):
        hierot.load_spec(TINY, ["optimizer={name: adamm}"])
    with pytest.raises(SpecError, match=r"optimizer\.schedule\.name: unknown lr schedule 'cosin'"):
        hierot.load_spec(TINY, ["optimizer.schedule={name: cosin}"])


def test_an_optimizer_without_a_name_is_adam_as_before():
    spec = hierot.load_spec({**TINY, "optimizer": {"lr": 0.01}})
    assert spec.optimizer.name == "adam" and spec.optimizer.lr == 0.01
    assert spec.optimizer.schedule.name == "constant"
    assert hierot.load_spec(TINY).optimizer.name == "adam"


@pytest.mark.parametrize("name", sorted(json.loads((DATA / "presets_resolved_0.1.0.json")
                                                   .read_text())))
def test_presets_resolve_as_hierot_0_1_0_resolved_them(name):
    """The resolved spec of every preset 0.1.0 shipped, as 0.1.0 wrote it, field for field; the
    only fields beyond it are the options added since, at defaults that keep 0.1.0's behaviour."""
    before = json.loads((DATA / "presets_resolved_0.1.0.json").read_text())[name]
    assert name in presets
    now = hierot.load_spec(name).model_dump(mode="json")
    for (section, field), default in ADDED_SINCE_0_1_0.items():
        assert now[section].pop(field) == default, (section, field)
    assert now == before


ADDED_SINCE_0_1_0 = {
    ("divergence", "backend"): "auto",  # tensorized up to n + m = tile_size: the paper's batch
    ("divergence", "tile_size"): 512,
    ("divergence", "prior_pairs"): None,  # every prior-prior pair, as 0.1.0 summed them
    ("train", "ema"): None,
    ("train", "skip_update"): None,
    ("train", "fused_update"): False,  # torch's fused Adam and the copies' refresh, as 0.1.0
}
"""Options a resolved 0.1.0 preset gains in 0.2.0, with the defaults it gains them at."""
