"""Evaluation: every metric in its possible range, every figure written, for image and vector runs.

Tiny runs (a few steps on the 8 x 8 digits and on toy-hierarchy vectors) go through
``hierot eval``, ``plot``, ``sample`` and ``report``; the Fréchet distance and the linear probe
are checked against known answers. The FCD classifier is cached in a temporary directory.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py

import hierot
from hierot.cli import main
from hierot.components import DataSplits
from hierot.evaluation import (
    evaluate,
    format_table,
    frechet_distance,
    linear_probe,
    load_run,
    plot_run,
    write_report,
)
from hierot.evaluation._frechet import frechet_from_stats
from hierot.evaluation.classifier import CACHE_ENV
from hierot.evaluation.evaluator import number, per_layer_rows
from hierot.evaluation.figures import CAPTIONS

SAMPLES, FAST = 300, ["--samples", "300", "--resamples", "20"]
"""A small protocol for tests (the default is 10,000 samples, 200 resamples)."""
QUIET = {"log_every": 1, "checkpoint_every": 2, "progress": False}
IMAGES = {
    "data": {"name": "digits", "limit": 600},
    "layers": two_layers(),
    "train": {"batch_size": 32, "steps": 4, **QUIET},
}
VECTORS = {
    "data": {"name": "toy-hierarchy", "n_train": 400, "n_test": 150},
    "layers": [
        {"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}, "decoder_head": "deterministic"},
        {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}},
    ],
    "train": {"batch_size": 32, "steps": 4, **QUIET},
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("images") / "run"
    hierot.fit(IMAGES, out=out)
    return out


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("vectors") / "run"
    hierot.fit(VECTORS, out=out)
    return out


def finite(value) -> bool:
    return value is not None and math.isfinite(value)


def check_ranges(result: dict, dims: dict[str, int]) -> None:
    """Every metric of an eval.json finite and within what it can be."""
    objective = result["objective"]
    assert objective["unweighted"] and all(finite(v) for v in objective["unweighted"].values())
    assert all(finite(v) for v in objective["weighted"].values()) and finite(objective["total"])
    assert set(objective["unweighted"]) >= {"rec_x", "rec_z1", f"match_z{len(dims)}"}
    for kind in ("l2sq", "mse"):
        assert set(result["reconstruction"][kind]) == set(dims)
        assert all(finite(v) and v >= 0 for v in result["reconstruction"][kind].values())
    top = result["top_divergence"]
    assert top["layer"] == len(dims) and top["samples"] >= 2
    # The unbiased MMD, and the Sinkhorn divergence through its solver's approximations, may dip
    # slightly below 0.
    assert finite(top["mmd"]) and top["mmd"] > -0.1
    assert finite(top["sinkhorn"]) and top["sinkhorn"] > -0.1
    assert all(finite(v) for v in top["floor"].values())
    active = result["active_units"]
    assert active["dims"] == dims
    assert all(0 <= active["count"][k] <= dims[k] for k in dims)
    probe = result["probe"]
    assert set(probe["accuracy"]) == set(dims)
    assert all(0 <= a <= 1 for a in [*probe["accuracy"].values(), probe["chance"]])
    quality = result["sample_quality"]
    assert quality["metric"] == "Fréchet classifier distance (FCD)"
    assert finite(quality["fcd"]) and quality["fcd"] >= 0
    assert finite(quality["floor_fcd"]) and quality["floor_fcd"] >= 0
    assert quality["samples"] == SAMPLES
    assert quality["protocol"]["version"] == "hierot-eval/2"
    for block in [quality["floor"], *quality["samplers"]["prior"].values()]:
        for key in ("precision", "recall", "coverage"):
            lo, hi = block["intervals"][key]
            assert 0 <= block[key] <= 1 and lo <= block[key] + 1e-9 and block[key] <= hi + 1e-9
    assert 0 <= quality["classifier"]["test_accuracy"] <= 1
    assert result["wall_time_s"] > 0


# -- known answers ---------------------------------------------------------------------------------
def test_frechet_known_answers():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(800, 6)) @ rng.normal(size=(6, 6))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    reordered = features[rng.permutation(800)]
    assert frechet_distance(features, reordered) == pytest.approx(0.0, abs=1e-8)
    shuffled = np.stack([rng.permutation(c) for c in features.T], 1)  # breaks the correlations
    noise = rng.normal(size=features.shape)
    assert frechet_distance(features, shuffled) > 0.1
    assert frechet_distance(features, noise) > 1.0
    # Two Gaussians with diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
    mu_a, mu_b = np.zeros(3), np.array([1.0, 2.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 5.0 + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert frechet_from_stats(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected)


def test_linear_probe_separable_and_random_labels():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(1200, 6, generator=generator)
    separable = (z[:, 0] > 0).long() + 2 * (z[:, 1] - z[:, 2] > 0).long()
    assert linear_probe(z[:800], separable[:800], z[800:], separable[800:]) > 0.95
    random = torch.randint(4, (1200,), generator=generator)
    chance = linear_probe(z[:800], random[:800], z[800:], random[800:])
    assert chance == pytest.approx(0.25, abs=0.1)


# -- an image run ----------------------------------------------------------------------------------
def test_eval_image_run(image_run, capsys):
    assert main(["eval", str(image_run), "--checkpoint", "4", *FAST]) == 0
    out = capsys.readouterr().out
    assert "Fréchet classifier distance (FCD)" in out and "probe acc" in out and "wall time" in out
    result = json.loads((image_run / "eval.json").read_text())
    assert result["step"] == 4 and result["test_points"] == 297 and result["train_points"] == 600
    check_ranges(result, {"z1": 8, "z2": 2})
    classifier = result["sample_quality"]["classifier"]
    assert classifier["source"] == "shipped" and classifier["test_accuracy"] > 0.9
    protocol = result["sample_quality"]["protocol"]  # 297 test < 300 samples: the training split
    assert protocol["reference"] == {**protocol["reference"], "split": "train", "points": 300}
    assert protocol["features"]["sha256"] == classifier["sha256"]
    layers = result["sample_quality"]["per_layer"]
    assert set(layers["layers"]) == {"z1", "z2"} and layers["points"] == 297
    again = evaluate(image_run, write=False, samples=SAMPLES, resamples=20)  # same seeds
    assert again["sample_quality"]["fcd"] == pytest.approx(result["sample_quality"]["fcd"])
    assert again["objective"] == result["objective"]


def test_plot_sample_and_report_image_run(image_run, tmp_path, capsys):
    if not (image_run / "eval.json").exists():  # when run alone
        evaluate(image_run, samples=SAMPLES, resamples=20)
    assert main(["plot", str(image_run)]) == 0  # UMAP for the 8-D layer
    for name in CAPTIONS:
        png = image_run / "figures" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (image_run / "report.md").read_text()
    assert all(f"](figures/{name})" in report for name in CAPTIONS)
    assert "Fréchet classifier distance" in report and "`digits(limit=600)`" in report
    assert main(["sample", str(image_run), "-n", "7", "--out", str(tmp_path / "s.pt")]) == 0
    assert torch.load(tmp_path / "s.pt", weights_only=True).shape == (7, 1, 8, 8)
    assert main(["sample", str(image_run), "-n", "12", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


# -- a vector run ----------------------------------------------------------------------------------
def test_eval_and_plot_vector_run(vector_run):
    result = evaluate(vector_run, samples=SAMPLES, resamples=20)
    check_ranges(result, {"z1": 4, "z2": 3})
    classifier = result["sample_quality"]["classifier"]  # no shipped weights: trained here
    assert classifier["kind"] == "mlp" and classifier["source"] == "trained-here"
    assert classifier["cached"] is False
    again = evaluate(vector_run, samples=SAMPLES, resamples=20, write=False)
    assert again["sample_quality"]["classifier"]["cached"] is True
    assert again["sample_quality"]["fcd"] == pytest.approx(result["sample_quality"]["fcd"])
    written = plot_run(vector_run, embedding="pca")
    assert [p.name for p in written] == list(CAPTIONS)
    assert all(p.stat().st_size > 0 for p in written)
    assert "![" in write_report(vector_run).read_text()


def test_unlabelled_data_skips_probe_and_fcd(vector_run):
    labelled = load_run(vector_run).data
    run = load_run(vector_run, data=DataSplits(labelled.train_x, labelled.test_x))
    result = evaluate(run, write=False, samples=SAMPLES)
    assert "skipped" in result["probe"] and "skipped" in result["sample_quality"]
    assert finite(result["top_divergence"]["mmd"]) and result["reconstruction"]["l2sq"]
    assert "skipped" in format_table(result)
    assert len(plot_run(run, embedding="pca")) >= len(CAPTIONS) - 1  # per-layer: with eval.json


# -- user errors -----------------------------------------------------------------------------------
def test_user_errors_exit_2(image_run, tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert main(["eval", str(image_run), "--checkpoint", "3"]) == 2
    assert "no checkpoint of step 3" in capsys.readouterr().err
    assert main(["sample", str(image_run), "--out", str(tmp_path / "s.jpg")]) == 2
    assert "must end in .png" in capsys.readouterr().err


def test_report_without_eval_or_figures(tmp_path):
    out = tmp_path / "run"
    hierot.fit({**IMAGES, "train": {**IMAGES["train"], "steps": 1}}, out=out)
    text = write_report(out).read_text()
    assert "run `hierot eval RUN_DIR`" in text and "run `hierot plot RUN_DIR`" in text


# -- the VAE objectives ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hvae", "lvae"])
def test_eval_and_plot_vae_runs(name, tmp_path, cache, capsys):
    out = tmp_path / "run"
    hierot.fit({**IMAGES, "objective": {"name": name, "warmup_steps": 2}}, out=out)
    assert main(["eval", str(out), "--samples", "200", "--resamples", "20"]) == 0
    table = capsys.readouterr().out
    assert "log p(x) >=" in table and "KL (nats)" in table and "KL n/a" not in table
    result = json.loads((out / "eval.json").read_text())
    assert result["kl"]["density_model"] is True
    assert [row[-1] for row in per_layer_rows(result)] == [
        number(result["kl"]["nats"][layer]) for layer in ("z1", "z2")]
    assert result["objective_name"] == name
    assert set(result["objective"]["unweighted"]) == {"rec_x", "kl_z1", "kl_z2"}
    kl = result["kl"]
    assert all(finite(v) and v >= 0 for v in kl["nats"].values())
    assert kl["estimate"] == ({"z1": "monte-carlo", "z2": "analytic"} if name == "hvae"
                             else {"z1": "analytic", "z2": "analytic"})
    likelihood = result["likelihood"]
    assert likelihood["samples"] == 100 and likelihood["points"] == 297
    assert likelihood["elbo"] <= likelihood["log_px"] < 0
    assert all(0 <= result["active_units"]["count"][k] <= d for k, d in {"z1": 8, "z2": 2}.items())
    assert main(["plot", str(out), "--embedding", "pca"]) == 0
    assert all((out / "figures" / figure).is_file() for figure in CAPTIONS)
    report = (out / "report.md").read_text()
    assert "not used by the objective" in report and "importance-weighted" in report


def test_wae_runs_report_kl_and_skip_the_likelihood(vector_run):
    result = evaluate(vector_run, write=False, samples=SAMPLES, resamples=20)
    assert "skipped" in result["likelihood"]
    assert result["kl"]["estimate"] == {"z1": "monte-carlo", "z2": "analytic"}
    assert all(finite(v) for v in result["kl"]["nats"].values())
    assert result["kl"]["density_model"] is False  # the table says n/a, the JSON keeps the values
    table = format_table(result)
    assert "KL n/a: the objective is not a density model" in table
    assert [row[-1] for row in per_layer_rows(result)] == ["n/a", "n/a"]


def test_the_eval_table_says_per_coordinate_for_vector_data():
    from hierot.evaluation.evaluator import per_layer_header

    assert "rec MSE/coord" in per_layer_header({"data_shape": [16]})
    assert "rec MSE/pixel" in per_layer_header({"data_shape": [1, 28, 28]})
    assert "rec MSE/pixel" in per_layer_header({})  # an eval.json written before data_shape
