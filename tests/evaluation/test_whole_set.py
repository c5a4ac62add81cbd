"""hierot.evaluation._whole_set: the run's own divergence on the whole encoded training set against
as many prior samples, with the online backend, equal to the dense computation."""

from __future__ import annotations

import math

import pytest
import torch

import hierot
from hierot._utils import seeded
from hierot.evaluation import load_run
from hierot.evaluation._whole_set import online_options, whole_set_divergence
from hierot.evaluation.trained import encode
from hierot.registry import divergences

SPEC = {
    "data": {"name": "toy-hierarchy", "n_train": 300, "n_test": 50},
    "layers": [
        {"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}, "decoder_head": "deterministic"},
        {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}},
    ],
    "train": {"batch_size": 32, "steps": 2, "progress": False, "checkpoint_every": 2},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    hierot.fit(hierot.load_spec(SPEC, ["divergence={name: mmd, tile_size: 64}"]), out=out)
    return load_run(out)


def test_whole_training_set_against_as_many_prior_samples(run):
    x = run.data.train_x
    result = whole_set_divergence(run.objective, x, run.spec.divergence, seed=3)
    assert result["samples"] == len(x) == 300
    assert result["divergence"]["backend"] == "online"
    assert result["divergence"]["tile_size"] == 64
    assert math.isfinite(result["value"]) and result["seconds"] >= 0
    # the same encoded points and prior draws, through the dense backend
    with seeded(3):
        encoded = encode(run.objective, x, sample=True)[-1]
        prior = torch.randn(encoded.shape)
    dense = run.spec.divergence.model_copy(update={"backend": "tensorized"})
    want = float(divergences.build(dense)(encoded.double(), prior.double()))
    assert result["value"] == pytest.approx(want, rel=1e-4, abs=1e-7)


def test_online_options_only_where_the_divergence_has_that_backend(run):
    sliced = divergences.tagged_options("sliced-wasserstein")(name="sliced-wasserstein")
    assert online_options(sliced) is sliced
    sinkhorn = divergences.tagged_options("sinkhorn")(name="sinkhorn", blur=0.1)
    assert online_options(sinkhorn).backend == "online"
    assert online_options(sinkhorn).blur == 0.1


def test_a_divergence_that_refuses_the_size_is_reported_skipped(run):
    exact = divergences.tagged_options("wasserstein")(name="wasserstein")
    x = run.data.train_x.repeat(30, 1)  # 9,000 points: above the exact solver's limit
    result = whole_set_divergence(run.objective, x, exact)
    assert "value" not in result and "sinkhorn with backend: online" in result["skipped"]
