"""Sample fidelity and coverage metrics and the post-hoc samplers of the top latent.

The k-NN metrics are checked on answers known in advance: a set against itself, an independent
draw of the same distribution, a subset with classes dropped, and noisy copies; the samplers on
data whose density is known; ``hierot eval`` / ``sample`` on a tiny trained run.
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
from hierot.errors import HierotError
from hierot.evaluation import evaluate
from hierot.evaluation.classifier import CACHE_ENV
from hierot.evaluation.sample_quality import (
    class_coverage,
    density_coverage,
    fidelity_coverage,
    knn_radii,
    precision_recall,
)
from hierot.evaluation.samplers import (
    PATHS,
    decode_top,
    draw,
    fitted,
    parse_sampler,
    samplers,
)
from hierot.evaluation.trained import load_run

CLASSES, PER_CLASS, DIM = 10, 60, 16


def blobs(seed: int, per_class: int = PER_CLASS) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten well-separated Gaussian clusters (centres fixed, points drawn with ``seed``)."""
    centres = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(123)) * 10
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    return centres[labels] + torch.randn(len(labels), DIM, generator=g), labels


def test_knn_radii_brute_force_and_chunking():
    x, _ = blobs(0)
    distances = torch.cdist(x.double(), x.double()).sort(1).values  # column 0: the point itself
    for k in (1, 3, 5):
        expected = distances[:, k]
        torch.testing.assert_close(knn_radii(x, k), expected)
        torch.testing.assert_close(knn_radii(x, k, chunk=7), expected)
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(x[:3], 3)


def test_a_set_against_itself():
    x, labels = blobs(0)
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    dc = density_coverage(x, x, k=5)
    assert dc["coverage"] == 1.0
    # every ball holds its centre and its k neighbours: density (k + 1) / k exactly
    assert dc["density"] == pytest.approx(6 / 5)
    cc = class_coverage(labels, labels, CLASSES)
    assert cc["total_variation"] == 0.0 and cc["kl_test_samples"] == pytest.approx(0.0)
    assert cc["rare"] == 0 and cc["rare_classes"] == []


def test_an_independent_draw_of_the_same_distribution():
    real, _ = blobs(0, per_class=100)
    fake, _ = blobs(1, per_class=100)
    m = fidelity_coverage(real, fake)
    # k = 3 balls of 100 points per 16-D cluster cover a bit less than the cluster itself
    assert m["precision"] > 0.7 and m["recall"] > 0.7
    assert abs(m["precision"] - m["recall"]) < 0.05  # the two sets play symmetric roles
    assert 0.9 < m["density"] < 1.1
    assert m["coverage"] > 0.9


def test_a_mode_dropped_subset():
    real, labels = blobs(0)
    fake, fake_labels = blobs(1)
    kept = fake_labels < 7  # classes 7, 8, 9 are never sampled
    fake, fake_labels = fake[kept], fake_labels[kept]
    m = fidelity_coverage(real, fake)
    full = fidelity_coverage(real, blobs(1)[0])
    # fidelity stays what it is for the full draw; coverage falls to about 7/10 of it
    assert m["precision"] == pytest.approx(full["precision"], abs=0.05)
    assert m["density"] == pytest.approx(full["density"], abs=0.1)
    assert m["recall"] == pytest.approx(0.7 * full["recall"], abs=0.04)
    assert m["coverage"] == pytest.approx(0.7 * full["coverage"], abs=0.04)
    cc = class_coverage(fake_labels, labels, CLASSES)
    assert cc["rare"] == 3 and cc["rare_classes"] == [7, 8, 9]
    assert cc["total_variation"] == pytest.approx(0.3)
    assert math.isfinite(cc["kl_test_samples"]) and cc["kl_test_samples"] > 0.3


def test_noisy_copies_lose_fidelity():
    real, _ = blobs(0)
    g = torch.Generator().manual_seed(5)
    clean = fidelity_coverage(real, real + 0.3 * torch.randn(real.shape, generator=g))
    noisy = fidelity_coverage(real, real + 3.0 * torch.randn(real.shape, generator=g))
    assert clean["precision"] > 0.9
    assert noisy["precision"] < 0.2 and noisy["density"] < 0.2
    assert noisy["precision"] < clean["precision"] - 0.5
    assert noisy["recall"] > 0.9  # the noisy samples' own balls are wide: recall cannot see it


def test_class_coverage_known_histograms():
    test = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    samples = torch.tensor([0] * 70 + [1] * 29 + [2] * 1)
    cc = class_coverage(samples, test, 3)
    assert cc["test"] == [0.5, 0.3, 0.2] and cc["samples"] == [0.7, 0.29, 0.01]
    assert cc["total_variation"] == pytest.approx(0.5 * (0.2 + 0.01 + 0.19))
    assert cc["rare_classes"] == [2]  # 0.01 < 0.1 * 0.2; class 1 at 0.29 is not rare
    p, q = np.array([51, 31, 21]) / 103, np.array([71, 30, 2]) / 103
    assert cc["kl_test_samples"] == pytest.approx(float((p * np.log(p / q)).sum()))


# -- samplers ------------------------------------------------------------------------------------
def test_sampler_registry_and_options():
    assert {"prior", "gmm", "empirical"} <= set(samplers.names())
    assert parse_sampler("gmm").n_components == 10
    assert parse_sampler("{name: gmm, n_components: 3}").n_components == 3
    with pytest.raises(HierotError, match="did you mean 'gmm'"):
        parse_sampler("gmn")
    with pytest.raises(HierotError, match="n_components"):
        parse_sampler("{name: gmm, n_components: 0}")


def test_gmm_and_empirical_samplers_reproduce_the_codes_distribution():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 2.0]])
    codes = centres[torch.randint(2, (2000,), generator=g)] + 0.5 * torch.randn(2000, 2,
                                                                                generator=g)
    gmm = samplers.build(parse_sampler("{name: gmm, n_components: 2}")).fit(codes, seed=0)
    drawn = gmm.sample(4000, torch.Generator().manual_seed(1))
    assert drawn.shape == (4000, 2) and drawn.dtype == torch.float32
    left = drawn[:, 0] < 0
    assert 0.45 < float(left.float().mean()) < 0.55
    torch.testing.assert_close(drawn[left].mean(0), centres[0], atol=0.1, rtol=0)
    torch.testing.assert_close(drawn[~left].std(0), torch.tensor([0.5, 0.5]), atol=0.06, rtol=0)
    for covariance in ("diag", "tied", "spherical"):
        other = samplers.build(parse_sampler({"name": "gmm", "n_components": 2,
                                              "covariance": covariance})).fit(codes)
        assert other.sample(10, torch.Generator().manual_seed(0)).shape == (10, 2)
    empirical = samplers.build(parse_sampler("empirical")).fit(codes)
    rows = empirical.sample(50, torch.Generator().manual_seed(0))
    assert all((codes == r).all(1).any() for r in rows)


TINY = {
    "data": {"name": "digits", "limit": 300},
    "layers": two_layers(),
    "train": {"batch_size": 32, "steps": 6, "log_every": 3, "checkpoint_every": 6,
              "progress": False},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        out = tmp_path_factory.mktemp("tiny") / "run"
        hierot.fit(TINY, out=out)
        yield out


def test_decoding_paths(tiny_run):
    run = load_run(tiny_run, device="cpu")
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    mean_a = decode_top(run.model, z, "mean")
    anc_a = decode_top(run.model, z, "ancestral")
    torch.manual_seed(1)
    torch.testing.assert_close(decode_top(run.model, z, "mean"), mean_a)  # no noise on this path
    assert not torch.equal(decode_top(run.model, z, "ancestral"), anc_a)  # z1 | z2 is drawn
    torch.testing.assert_close(mean_a, run.model.decode(z, 2))
    prior = fitted(run, parse_sampler("prior"))
    torch.testing.assert_close(draw(run.model, prior, 7, "ancestral", seed=3),
                               draw(run.model, prior, 7, "ancestral", seed=3))
    with pytest.raises(HierotError, match="sampling path"):
        decode_top(run.model, z, "noisy")


def test_eval_reports_every_sampler_and_path(tiny_run, capsys):
    result = evaluate(tiny_run, samples=200, samplers=["prior", "gmm"], write=False,
                      resamples=20, per_layer=False)
    quality = result["sample_quality"]
    assert list(quality["samplers"]) == ["prior", "gmm"]
    assert quality["fcd"] == quality["samplers"]["prior"]["ancestral"]["fcd"]
    assert "per_layer" not in quality
    for block in [quality["floor"],
                  *(b for paths in quality["samplers"].values() for b in paths.values())]:
        for key in ("precision", "recall", "coverage"):
            assert 0.0 <= block[key] <= 1.0
        assert block["density"] >= 0 and block["fcd"] >= 0
        cc = block["class_coverage"]
        assert sum(cc["samples"]) == pytest.approx(1.0) and 0 <= cc["total_variation"] <= 1
    assert list(quality["samplers"]["gmm"]) == list(PATHS)
    assert quality["sampler_options"]["gmm"]["n_components"] == 10

    assert main(["eval", str(tiny_run), "--samples", "100", "--sampler", "prior",
                 "--sampler", "{name: gmm, n_components: 2}", "--resamples", "20",
                 "--no-per-layer"]) == 0
    out = capsys.readouterr().out
    assert "gmm(n_components=2) / mean" in out and "training data (floor)" in out
    written = json.loads((tiny_run / "eval.json").read_text())
    assert "gmm(n_components=2)" in written["sample_quality"]["samplers"]
    assert main(["report", str(tiny_run)]) == 0
    assert "prior / ancestral" in (tiny_run / "report.md").read_text()


def test_sample_command_with_a_post_hoc_sampler(tiny_run, tmp_path, capsys):
    out = tmp_path / "s.pt"
    assert main(["sample", str(tiny_run), "-n", "9", "--out", str(out), "--sampler", "gmm",
                 "--path", "mean"]) == 0
    assert torch.load(out).shape == (9, 1, 8, 8)
    assert "gmm / mean" in capsys.readouterr().out
    assert main(["sample", str(tiny_run), "-n", "4", "--out", str(tmp_path / "s.png"),
                 "--sampler", "empirical"]) == 0
    assert main(["sample", str(tiny_run), "-n", "4", "--out", str(out), "--sampler", "gmx"]) == 2
    assert "did you mean 'gmm'" in capsys.readouterr().err
