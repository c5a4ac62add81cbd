"""The objective registry: every objective on a tiny hierarchy, the contract, back-compat,
plug-ins."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import yaml
from _fixtures import FakeDist  # tests/_fixtures.py
from pydantic import Field

import hierot
import hierot._registry as registry_module
from hierot.cli import main
from hierot.components import DataSplits
from hierot.errors import SpecError
from hierot.objectives import Objective, ObjectiveOptions, Terms
from hierot.registry import objectives
from hierot.run import load_run_spec, upgrade
from hierot.spec.loading import dump_spec, load_spec

LAYERS = [
    {"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [8]},
     "decoder": {"name": "mlp", "hidden": [8], "output": "sigmoid"},
     "decoder_head": "deterministic"},
    {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [8]},
     "decoder": {"name": "mlp", "hidden": [8]}},
    {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
     "decoder": {"name": "mlp", "hidden": [8]}},
]
TINY = {"data": {"name": "digits"}, "layers": LAYERS, "train": {"steps": 1, "batch_size": 16}}


def tiny_data(n: int = 16) -> DataSplits:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 6, generator=generator)
    return DataSplits(train_x=x, test_x=x.clone())


def build(objective: Any, **extra):
    spec = load_spec({**TINY, "objective": objective, **extra})
    return hierot.build(spec, data=tiny_data())


@pytest.mark.parametrize("name", objectives.names())
def test_every_objective_gives_finite_terms_and_gradients(name):
    built = build({"name": name})
    objective = built.objective
    assert isinstance(objective, Objective) and isinstance(objective.options, ObjectiveOptions)
    torch.manual_seed(0)
    terms = objective(built.data.train_x)
    assert isinstance(terms, Terms) and terms.unweighted
    assert all(torch.isfinite(v) for v in terms.weighted.values())
    terms.total.backward()
    grads = [p.grad for p in built.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # the hooks evaluation uses
    assert objective.sample(5).shape == (5, 6)
    assert objective.reconstruct(built.data.test_x, 2).shape == (16, 6)
    posteriors, codes = objective.encode(built.data.test_x, sample=False)
    assert [tuple(c.shape) for c in codes] == [(16, 4), (16, 3), (16, 2)]
    assert len(posteriors) == 3
    # a one-line description for `hierot validate` and reports
    assert objective.options.label and objective.options.label in objective.options.describe([4, 3,
                                                                                              2])


def test_hierot_list_objectives(capsys):
    assert main(["list", "objectives"]) == 0
    out = capsys.readouterr().out
    for name in ("stacked-wae", "wae", "hvae", "lvae"):
        assert f"  {name} " in out


# -- the gather is always applied ------------------------------------------------------------------
class RecordingGather:
    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, samples):
        self.shapes.append(tuple(samples.shape))
        return torch.cat([samples, samples])  # as if a second rank held the same batch


@pytest.mark.parametrize("name, matched", [("stacked-wae", (16, 2)), ("wae", (16, 4))])
def test_match_always_gathers(name, matched):
    gather = RecordingGather()
    spec = load_spec({**TINY, "objective": {"name": name}})
    built = hierot.build(spec, data=tiny_data(), gather=gather)
    built.objective(built.data.train_x)
    assert gather.shapes == [matched]
    # and the divergence saw the gathered batch: as many prior samples as gathered rows
    drawn = []
    built.objective.match(torch.zeros(3, 2), lambda m: drawn.append(m) or torch.zeros(m, 2))
    assert drawn == [6] and gather.shapes[-1] == (3, 2)


# -- back-compat -----------------------------------------------------------------------------------
OLD = {**TINY, "objective": "flat",
       "weights": {"schedule": "explicit", "reconstruction": [1.0, 0.5, 0.25], "match": 0.1}}
NEW = {**TINY, "objective": {"name": "wae", "weights": {
    "schedule": "explicit", "reconstruction": [1.0, 0.5, 0.25], "match": 0.1}}}


def test_the_old_form_loads_from_run_directories_only(tmp_path):
    """0.1's ``objective: flat`` + top-level ``weights:``: converted at the run-directory
    boundary (:func:`hierot.run.upgrade`), refused by the spec loader."""
    new = load_spec(NEW)
    with pytest.raises(SpecError) as info:
        load_spec(OLD)
    assert info.value.lines[0].startswith("objective: a bare name is hierot 0.1's form")
    assert "objective: {name: wae, weights:" in info.value.lines[0]
    assert info.value.lines[1].startswith("weights: a top-level weights: is hierot 0.1's form")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(OLD))
    old = load_run_spec(tmp_path)
    assert old == new and old.objective.name == "wae"
    assert old.resolved_weights() == ([1.0, 0.5, 0.25], 0.1)
    a, b = hierot.build(old, data=tiny_data()), hierot.build(new, data=tiny_data())
    torch.manual_seed(3)
    ta = a.objective(a.data.train_x).scalars()
    torch.manual_seed(3)
    tb = b.objective(b.data.train_x).scalars()
    assert ta == tb and set(ta) >= {"rec_x", "match_z1", "w_match_z1"}


def test_switching_the_objective_of_a_preset():
    spec = load_spec("mnist-stackedwae.v1", ["objective.name=wae"])
    assert spec.objective.name == "wae"
    assert spec.objective.weights.schedule == "paper-mnist"  # wae's default weights
    dumped = yaml.safe_load(dump_spec(spec))
    assert "weights" not in dumped and dumped["objective"]["weights"]["lambda_rec"] == 0.05
    assert load_spec(dumped) == spec


def test_weights_is_short_for_objective_weights_in_overrides():
    spec = load_spec(NEW, ["weights.match=0.5"])
    weights = spec.objective.weights
    assert weights.match == 0.5 and weights.reconstruction == (1.0, 0.5, 0.25)
    spec = load_spec(NEW, ["weights={schedule: paper-mnist, lambda_rec: 0.1}"])
    assert spec.objective.weights.schedule == "paper-mnist"
    assert spec.objective.weights.lambda_rec == 0.1
    with pytest.raises(SpecError, match=r"objective\.weights\.lambda_reck: Extra inputs"):
        load_spec(NEW, ["weights.lambda_reck=0.1"])
    assert load_spec(TINY, ["weights={schedule: paper-svhn}"]).objective.name == "stacked-wae"


def test_upgrade_leaves_the_new_form_alone_and_defaults_to_stacked_wae():
    assert upgrade(NEW) is NEW
    assert upgrade({"weights": {"schedule": "paper-svhn"}})["objective"] == {
        "name": "stacked-wae", "weights": {"schedule": "paper-svhn"}}
    assert load_spec(TINY).objective.name == "stacked-wae"


def test_objective_errors_name_the_field():
    with pytest.raises(SpecError) as info:
        load_spec(NEW, ["objective.weights.reconstruction=[1.0]"])
    assert info.value.lines == [("objective.weights.reconstruction: 1 values for 3 reconstruction "
                                "terms (one per latent layer)")]
    with pytest.raises(SpecError) as info:
        load_spec({**NEW, "objective": {"name": "hvea"}})
    assert info.value.lines[0].startswith(
        "objective.name: unknown objective 'hvea'; did you mean 'hvae'")
    with pytest.raises(SpecError, match=r"objective\.weights: Extra inputs are not permitted"):
        load_spec({**NEW, "objective": {**NEW["objective"], "name": "hvae"}})
    deterministic = [dict(LAYERS[0]), {**LAYERS[1], "encoder_head": "deterministic"},
                     {**LAYERS[2], "decoder_head": "deterministic"}]
    with pytest.raises(SpecError) as info:
        load_spec({**TINY, "layers": deterministic, "objective": {"name": "lvae"}})
    assert [line.split(":")[0] for line in info.value.lines] == [
        "layers.1.encoder_head", "layers.2.decoder_head"]


# -- a plug-in objective through an entry point ----------------------------------------------------
class MeanMatchingOptions(ObjectiveOptions):
    label = "mean matching (a test plug-in)"
    weight: float = Field(1.0, gt=0)


class MeanMatching(Objective):
    """A plug-in objective: reconstruction of x and a divergence on z_1."""

    def forward(self, x):
        _encodings, codes = self.model.encode(x, depth=1)
        terms = Terms()
        terms.add("rec_x", (self.model.decoders[0](codes[0]).mean - x).square().sum(1).mean(), 1.0)
        prior = lambda m: torch.randn(m, codes[0].shape[1])
        terms.add("match_z1", self.match(codes[0], prior), self.options.weight)
        return terms


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    dist: FakeDist
    group: str = "hierot.objectives"

    def load(self):
        """Import the plug-in's module, which registers the objective with its options."""
        if "mean-matching" not in objectives._entries:
            objectives.register("mean-matching", options=MeanMatchingOptions)(MeanMatching)
        return MeanMatching


@pytest.fixture
def plugin(monkeypatch):
    """The global objective registry, re-discovering plug-ins from one fake entry point."""
    ep = FakeEntryPoint("mean-matching", "objective_pkg:MeanMatching",
                        FakeDist("objective-pkg", "0.3"))
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda *, group: [ep] if group == "hierot.objectives" else [])
    monkeypatch.delenv(registry_module.DISABLE_ENV, raising=False)
    monkeypatch.setattr(objectives, "_entries", dict(objectives._entries))
    monkeypatch.setattr(objectives, "_tagged", {})
    monkeypatch.setattr(objectives, "_loaded", False)
    return ep


def test_plugin_objective_is_listed_validated_built_and_gathered(plugin, capsys):
    assert objectives.get("mean-matching").source == "objective-pkg 0.3"
    assert main(["list", "objectives"]) == 0
    listed = capsys.readouterr().out
    assert "mean-matching" in listed and "[objective-pkg 0.3]" in listed
    with pytest.raises(SpecError, match="objective.weight"):
        load_spec({**TINY, "objective": {"name": "mean-matching", "weight": -1}})
    gather = RecordingGather()
    spec = load_spec({**TINY, "objective": {"name": "mean-matching", "weight": 2.0}})
    built = hierot.build(spec, data=tiny_data(), gather=gather)
    terms = built.objective(built.data.train_x)
    assert gather.shapes == [(16, 4)]
    assert (terms.weighted["match_z1"].item()
            == pytest.approx(2 * terms.unweighted["match_z1"].item()))
    terms.total.backward()
    assert math.isfinite(terms.total.item())
    assert built.model.encoders[0].head.mean.weight.grad.abs().sum() > 0
