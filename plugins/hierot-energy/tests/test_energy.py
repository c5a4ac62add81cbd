"""The energy plug-in: known answers, options, and registration through its entry point.

Needs the package installed (``pip install -e plugins/hierot-energy``). The generic divergence
properties (D >= 0, finite gradients, ...) are checked by hierot's
``tests/divergences/test_divergences.py``, which sweeps every registered divergence, plug-ins
included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hierot_energy import EnergyDistance, EnergyOptions
from pydantic import TypeAdapter, ValidationError
from scipy.stats import energy_distance, norm

from hierot.registry import divergences


def energy(**options):
    return divergences.build(divergences.tagged_options("energy")(name="energy", **options))


def test_registered_through_its_entry_point():
    assert "energy" in divergences
    entry = divergences.get("energy")
    assert entry.source.startswith("hierot-energy")
    assert entry.entry_point == "hierot_energy:EnergyDistance"
    assert entry.factory is EnergyDistance and entry.options is EnergyOptions
    assert not [e for e in divergences.plugin_errors if "energy" in e]


def test_validated_like_a_builtin_in_a_spec():
    adapter = TypeAdapter(divergences.options_union())
    options = adapter.validate_python({"name": "energy", "beta": 0.5})
    assert isinstance(options, EnergyOptions) and options.beta == 0.5
    for bad in ({"name": "energy", "beta": 2.0}, {"name": "energy", "beta": 0}):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_biased_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=70), rng.normal(1.0, 2.0, size=50)
    expected = energy_distance(x, y) ** 2 / 2  # scipy: sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)
    got = energy(estimator="biased")(torch.tensor(x)[:, None], torch.tensor(y)[:, None])
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_unbiased_matches_gaussian_closed_form():
    """X ~ N(0, 1), Y ~ N(mu, 1): X - Y ~ N(-mu, 2) and E|X - X'| = E|Y - Y'| = 2 / sqrt(pi)."""
    mu, s = 1.0, math.sqrt(2.0)
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2))
    e_xy += mu * (1 - 2 * norm.cdf(-mu / s))
    expected = e_xy - 2 / math.sqrt(math.pi)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 2000, 1, generator=gen, dtype=torch.float64).unbind()
    x, y = (x - x.mean()) / x.std(), (y - y.mean()) / y.std() + mu  # exact first two moments
    assert energy()(x, y).item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5])
def test_matches_naive_u_statistic(beta):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(9, 2, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 2, 2, generator=gen, dtype=torch.float64) + 0.3

    def dist(a, b):
        return ((a.flatten(1)[:, None] - b.flatten(1)[None]) ** 2).sum(-1).sqrt() ** beta

    def within(a):
        return dist(a, a).sum() / (len(a) * (len(a) - 1))

    expected = dist(x, y).mean() - (within(x) + within(y)) / 2
    assert energy(beta=beta)(x, y).item() == pytest.approx(expected.item(), rel=1e-10)


def test_identical_samples_and_gradients():
    x = torch.randn(64, 5, dtype=torch.float64, requires_grad=True)
    energy(estimator="biased")(x, x.detach().clone()).backward()
    assert torch.isfinite(x.grad).all()
    assert abs(energy(estimator="biased")(x, x).item()) < 1e-6
