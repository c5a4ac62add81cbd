"""The evaluation protocol on answers known in advance.

Data against itself (FD 0, precision/recall/coverage 1), a mode-dropped subset (recall and
coverage fall, precision holds), noisy copies (precision falls), KID's expectation 0 under the
null, the bootstrap intervals' coverage on a synthetic case, tiling, the reference-set rule, and
the per-layer regeneration.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py

import hierot
from hierot.errors import HierotError
from hierot.evaluation import _bootstrap as bs
from hierot.evaluation._frechet import frechet_distance
from hierot.evaluation._kid import kid, mmd2_unbiased
from hierot.evaluation._per_layer import regenerate
from hierot.evaluation.protocol import check_samples, reference_split
from hierot.evaluation.sample_quality import fidelity_coverage
from hierot.evaluation.trained import load_run


def gaussian(n: int, d: int = 4, seed: int = 0, shift: float = 0.0, scale: float = 1.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scale + shift


def modes(n: int, which: list[int], seed: int = 0) -> torch.Tensor:
    """A mixture of four well-separated Gaussians in 2-D, drawing only from ``which``."""
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    g = torch.Generator().manual_seed(seed)
    pick = torch.tensor(which)[torch.randint(len(which), (n,), generator=g)]
    return centres[pick] + torch.randn(n, 2, generator=g)


def test_data_against_itself_and_agreement_with_the_plain_metrics():
    x = gaussian(400)
    same = bs.measure(bs.reference(x), x, resamples=50)
    assert same["fd"] == pytest.approx(0.0, abs=1e-8)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    y = gaussian(500, seed=1, shift=0.2)
    other = bs.measure(bs.reference(x), y, resamples=50)
    plain = fidelity_coverage(x, y)
    assert {k: other[k] for k in plain} == pytest.approx(plain, abs=1e-12)
    assert other["fd"] == pytest.approx(frechet_distance(x, y), rel=1e-9)


def test_a_mode_dropped_subset_loses_coverage_not_precision():
    real = modes(800, [0, 1, 2, 3])
    full = bs.measure(bs.reference(real), modes(800, [0, 1, 2, 3], seed=1), resamples=50)
    half = bs.measure(bs.reference(real), modes(800, [0, 1], seed=1), resamples=50)
    assert full["recall"] > 0.9 and full["coverage"] > 0.9
    assert half["recall"] < 0.6 and half["coverage"] < 0.6  # half the modes never drawn
    assert half["precision"] > 0.9 and abs(half["precision"] - full["precision"]) < 0.05
    assert half["intervals"]["coverage"][1] < full["intervals"]["coverage"][0]


def test_noisy_copies_lose_precision():
    real = gaussian(600, d=8)
    clean = bs.measure(bs.reference(real), gaussian(600, d=8, seed=1), resamples=50)
    noisy = bs.measure(bs.reference(real),
                       gaussian(600, d=8, seed=1) + 1.5 * gaussian(600, d=8, seed=2),
                       resamples=50)
    assert clean["precision"] > 0.8 and noisy["precision"] < 0.5
    assert noisy["density"] < clean["density"] and noisy["fd"] > clean["fd"]


def test_kid_is_unbiased_under_the_null_and_positive_otherwise():
    values = [kid(gaussian(300, seed=2 * i), gaussian(300, seed=2 * i + 1), subsets=10,
                  subset_size=100, seed=i, resamples=50)["kid"] for i in range(30)]
    spread = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values)) < 3 * spread  # expectation 0 (a biased estimate sits above)
    assert min(values) < 0 < max(values)
    apart = kid(gaussian(300), gaussian(300, seed=1, shift=1.0), subsets=10, subset_size=100)
    assert apart["kid"] > 10 * spread and apart["interval"][0] > 0
    # the estimator itself: unbiased MMD^2 of a set with itself is not 0, of identical halves
    x = gaussian(50)
    assert mmd2_unbiased(x, x) < 0  # the cross term counts the diagonal the others leave out


def test_intervals_cover_the_expected_value_on_a_synthetic_case():
    """Reference fixed; 40 independent sample sets; each interval should hold the mean of the
    40 estimates (the expected value at this sample count) about 95 % of the time."""
    ref = bs.reference(gaussian(300, seed=100))
    draws = [bs.measure(ref, gaussian(300, seed=i, shift=0.2, scale=1.2), resamples=100, seed=i)
             for i in range(40)]
    for key in ("precision", "recall", "density", "coverage", "fd"):
        truth = np.mean([d[key] for d in draws])
        covered = np.mean([d["intervals"][key][0] <= truth <= d["intervals"][key][1]
                           for d in draws])
        assert covered >= 0.8, (key, covered)
        widths = [d["intervals"][key][1] - d["intervals"][key][0] for d in draws]
        # not vacuous: about the spread of the estimates (recall's about twice it: conservative,
        # the samples' own radii are held fixed)
        assert np.mean(widths) < 3 * 2 * 1.96 * np.std([d[key] for d in draws]), key


def test_tiles_give_the_same_answer():
    ref = bs.reference(gaussian(300), chunk=1000)
    y = gaussian(350, seed=1, shift=0.3)
    whole = bs.knn_parts(ref, y, chunk=1000)
    tiled = bs.knn_parts(bs.reference(gaussian(300), chunk=37), y, chunk=37)
    for key in whole:
        assert torch.equal(whole[key], tiled[key]), key


def test_near_points_are_kept_in_full_up_to_the_cap():
    """A reference point near many samples keeps NEAR_KEPT of them; recall/coverage survive."""
    ref = bs.reference(gaussian(10, d=2))
    crowd = ref.features[0] + 1e-4 * gaussian(200, d=2, seed=3)  # all in point 0's ball
    parts = bs.knn_parts(ref, crowd, chunk=16)
    assert parts["covered"].shape == (10, bs.NEAR_KEPT)
    assert parts["covered"][0].tolist() == list(range(bs.NEAR_KEPT))  # the first 32, in order
    counts = bs._counts(200, 50, torch.Generator().manual_seed(0))
    present = torch.cat([counts > 0, torch.zeros(50, 1, dtype=torch.bool)], 1)
    assert bool(present[:, parts["covered"][0]].any(1).all())  # covered in every resample


def test_the_reference_rule_and_the_memory_check():
    assert reference_split(test_size=10_000, train_size=60_000, n=10_000) == "test"
    assert reference_split(test_size=500, train_size=4_500, n=10_000) == "train"
    assert reference_split(test_size=500, train_size=400, n=10_000) == "test"  # the larger
    assert reference_split(test_size=500, train_size=4_500, n=300) == "test"
    check_samples(10_000, (1, 28, 28), 128, 4_500)  # the default fits
    with pytest.raises(HierotError, match="--samples 100000000000 needs about"):
        check_samples(10**11, (1, 28, 28), 128, 4_500)
    with pytest.raises(HierotError, match="at least 10"):
        check_samples(5, (1, 28, 28), 128, 4_500)


def test_regeneration_from_each_depth(tmp_path):
    out = tmp_path / "run"
    hierot.fit({"data": {"name": "digits", "limit": 200}, "layers": two_layers(),
                "train": {"batch_size": 32, "steps": 2, "progress": False}}, out=out)
    model = load_run(out).model
    z2 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(regenerate(model, z2, 2, "mean"), model.decode(z2, 2))
    z1 = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    # from depth 1 no noise is drawn on either path: the mean of p(x | z1)
    torch.testing.assert_close(regenerate(model, z1, 1, "ancestral"), model.decode(z1, 1))
    torch.manual_seed(0)
    first = regenerate(model, z2, 2, "ancestral")
    assert not torch.equal(first, regenerate(model, z2, 2, "ancestral"))  # z1 | z2 is drawn


def test_near_pairs_are_compressed_when_they_pile_up():
    """Past 64 x points x NEAR_KEPT pairs the store keeps only each point's first NEAR_KEPT."""
    near = bs._Near(points=2, samples=5000)
    for start in range(0, 5000, 1000):
        near.add(torch.ones(1000, 2, dtype=torch.bool), start)  # every sample near both points
    assert near.count < 2 * 5000  # compressed on the way (it holds 2 x 5,000 pairs uncompressed)
    dense = near.dense()
    assert dense.tolist() == [list(range(bs.NEAR_KEPT))] * 2
