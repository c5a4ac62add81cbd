"""Spec validation: whole-spec errors as `path: message` lines, overrides, presets, weights."""

from __future__ import annotations

import pytest
import yaml

import hierot
from hierot.errors import HierotError, SpecError
from hierot.registry import presets
from hierot.spec.loading import apply_overrides, dump_spec, load_spec

MINIMAL = {
    "data": {"name": "digits"},
    "layers": [
        {"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
    ],
    "train": {"steps": 2},
}


def test_minimal_spec_fills_the_paper_defaults():
    spec = load_spec(MINIMAL)
    assert spec.objective.name == "stacked-wae"
    assert spec.divergence.name == "mmd"
    assert spec.layers[0].cost.name == "l2sq"
    reconstruction, match = spec.resolved_weights()
    assert reconstruction == [1.0, pytest.approx(0.05 / 4)]
    assert match == 1e-4


def test_all_errors_are_reported_at_once_with_paths_and_close_matches():
    raw = apply_overrides(MINIMAL, [
        "data.name=digitz",
        "layers.0.encoder.name=mlpp",
        "layers.1.decoder.hiden=[3]",
        "divergence={name: sinkhorn, blur: -1}",
        "train.epochs=3",
        "optimizer.lr=0",
    ])
    with pytest.raises(SpecError) as info:
        load_spec(raw)
    lines = info.value.lines
    assert "data.name: unknown dataset 'digitz'; did you mean 'digits'?" in lines[0]
    assert any(l.startswith("layers.0.encoder.name: unknown network 'mlpp'; did you mean 'mlp'?")
               for l in lines)
    assert any(l.startswith("layers.1.decoder.hiden: Extra inputs are not permitted")
               for l in lines)
    assert any(l.startswith("divergence.blur:") for l in lines)
    assert any(l.startswith("train: give exactly one of steps and epochs") for l in lines)
    assert any(l.startswith("optimizer.lr:") for l in lines)
    assert len(lines) == 6


def test_cross_field_errors_name_the_field():
    raw = apply_overrides(MINIMAL, [
        "weights={schedule: explicit, reconstruction: [1], match: 1}",
        "penalties=[{name: abs-log-var, weights: [1, 2, 3]}]",
    ])
    with pytest.raises(SpecError) as info:
        load_spec(raw)
    assert info.value.lines == [
        ("objective.weights.reconstruction: 1 values for 2 reconstruction terms (one per latent "
        "layer)"),
        "penalties.0.weights: 3 values given for 2 latent layers",
    ]


def test_overrides_parse_yaml_and_reject_bad_paths():
    spec = load_spec(MINIMAL, ["train.steps=7", "layers.1.latent_shape=[3]", "seed=5"])
    assert (spec.train.steps, spec.layers[1].latent_shape, spec.seed) == (7, (3,), 5)
    with pytest.raises(SpecError, match="layers.9 is not an index"):
        load_spec(MINIMAL, ["layers.9.latent_shape=[3]"])
    with pytest.raises(SpecError, match="expected KEY.PATH=VALUE"):
        load_spec(MINIMAL, ["train.steps"])


def test_unknown_file_or_preset_is_a_clear_error(tmp_path):
    with pytest.raises(HierotError, match="neither a spec file nor a preset.*quickstart"):
        load_spec("quickstrat")
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [\n")
    with pytest.raises(SpecError, match="bad.yaml"):
        load_spec(bad)


def test_resolved_spec_round_trips():
    spec = load_spec("quickstart")
    again = load_spec(yaml.safe_load(dump_spec(spec)))
    assert again == spec


@pytest.mark.parametrize("divergence",
                         ["sinkhorn", "{name: sinkhorn, backend: pot}", "mmd", "wasserstein"])
def test_resolved_spec_round_trips_for_every_divergence(divergence):
    override = (f"divergence={divergence}" if "{" in divergence
                else f"divergence={{name: {divergence}}}")
    spec = load_spec("quickstart", [override])
    assert load_spec(yaml.safe_load(dump_spec(spec))) == spec


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_validates(name):
    spec = hierot.load_spec(name)
    assert spec.description


def test_paper_mnist_schedule():
    spec = load_spec("mnist-stackedwae.v1")
    assert [l.latent_shape for l in spec.layers] == [(32,), (16,), (8,), (4,), (2,)]
    assert [l.encoder.hidden for l in spec.layers] == [(w, w) for w in (2048, 1024, 512, 256, 128)]
    assert spec.layers[0].decoder_head == "deterministic"
    reconstruction, match = spec.resolved_weights()
    expected = [1.0] + [0.05**n / d for n, d in zip(range(1, 5), (32, 16, 8, 4))]
    assert reconstruction == pytest.approx(expected)
    assert match == 1e-4
    assert spec.train.batch_size == 128 and spec.optimizer.name == "adam"
    assert load_spec("mnist-wae.v1").objective.name == "wae"


def test_coverage_preset_is_the_benchmarked_arm():
    """`mnist-stackedwae-z8.v1` is exactly the `stacked-z8-ps512` arm of `stacked_coverage`
    (whose results back it): the paper's preset with two overrides, nothing else."""
    shipped = load_spec("mnist-stackedwae-z8.v1")
    arm = load_spec("mnist-stackedwae.v1", ["layers.4.latent_shape=[8]", "train.prior_samples=512"])
    assert shipped.description != arm.description
    assert shipped.model_copy(update={"description": arm.description}) == arm


def test_paper_svhn_schedule():
    raw = apply_overrides(MINIMAL, ["weights={schedule: paper-svhn, lambda_rec: 0.1}"])
    raw["layers"] = raw["layers"] * 3  # six layers
    reconstruction, match = load_spec(raw).resolved_weights()
    assert reconstruction == pytest.approx([1.0] + [0.1 ** ((p - 1) / 2 + 1) for p in range(1, 6)])
    assert match == 1e-4
