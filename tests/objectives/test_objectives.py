"""Each term of Eq. (10) and Eq. (7) against a direct hand computation on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

import hierot
from hierot.components import DataSplits
from hierot.costs import SquaredEuclidean, expected_cost
from hierot.distributions import Gaussian

SPEC = {
    "data": {"name": "digits"},
    "layers": [
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": []},
         "decoder": {"name": "mlp", "hidden": []}, "decoder_head": "deterministic"},
        {"latent_shape": [1], "encoder": {"name": "mlp", "hidden": []},
         "decoder": {"name": "mlp", "hidden": []}},
    ],
    "objective": {"name": "stacked-wae", "weights": {"schedule": "explicit",
                                                     "reconstruction": [1.0, 0.5], "match": 0.1}},
    "penalties": [{"name": "abs-log-var", "weights": [0.01, 0.001]}],
    "divergence": {"name": "mmd", "kernel": "imq", "scales": "wae", "estimator": "unbiased"},
    "train": {"steps": 1},
}


def hand_mmd(x, y):
    """Unbiased IMQ MMD with the WAE scales, written out directly."""
    d = x.shape[1]
    total = 0.0
    for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2 * d * s

        def k(a, b, c=c):
            return c / (c + ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

        n, m = len(x), len(y)
        kxx, kyy = k(x, x), k(y, y)
        total = total + (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        total = total + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total = total - 2 * k(x, y).mean()
    return total


def linear(module, inputs):
    """The mean and log-variance of an `mlp` with no hidden layer, by hand."""
    flat = inputs.flatten(1)
    head = module.head
    mean = flat @ head.mean.weight.T + head.mean.bias
    log_var = None if head.log_var is None else flat @ head.log_var.weight.T + head.log_var.bias
    return mean, log_var


def build(objective):
    spec = hierot.load_spec({**SPEC, "objective": {**SPEC["objective"], "name": objective}})
    x = torch.rand(6, 3)
    data = DataSplits(train_x=x, test_x=x)
    return hierot.build(spec, data=data), x


def test_stacked_objective_matches_hand_computation():
    built, x = build("stacked-wae")
    model = built.model
    torch.manual_seed(1)
    terms = built.objective(x)
    u, w = terms.scalars(), {k: v.item() for k, v in terms.weighted.items()}

    torch.manual_seed(1)  # the same noise, drawn in the same order: eps_1, eps_2, prior
    m1, lv1 = linear(model.encoders[0], x)
    z1 = m1 + torch.randn_like(m1) * (0.5 * lv1).exp()
    m2, lv2 = linear(model.encoders[1], z1)
    z2 = m2 + torch.randn_like(m2) * (0.5 * lv2).exp()
    prior = torch.randn(6, 1)
    x_hat, _ = linear(model.decoders[0], z1)
    mu1, dlv1 = linear(model.decoders[1], z2)

    rec_x = ((x - x_hat) ** 2).sum(1).mean()
    rec_z1 = (((z1 - mu1) ** 2).sum(1) + dlv1.exp().sum(1)).mean()  # ||z - mu||^2 + tr Sigma
    match = hand_mmd(z2, prior)
    penalty = 0.01 * lv1.abs().sum(1).mean() + 0.001 * lv2.abs().sum(1).mean()

    assert u["rec_x"] == pytest.approx(rec_x.item(), rel=1e-5)
    assert u["rec_z1"] == pytest.approx(rec_z1.item(), rel=1e-5)
    assert u["match_z2"] == pytest.approx(match.item(), rel=1e-4, abs=1e-6)
    assert w["rec_z1"] == pytest.approx(0.5 * rec_z1.item(), rel=1e-5)
    assert w["match_z2"] == pytest.approx(0.1 * match.item(), rel=1e-4, abs=1e-7)
    assert w["pen_abs-log-var"] == pytest.approx(penalty.item(), rel=1e-5)
    expected_total = rec_x + 0.5 * rec_z1 + 0.1 * match + penalty
    assert terms.total.item() == pytest.approx(expected_total.item(), rel=1e-5)
    assert set(terms.unweighted) == {"rec_x", "rec_z1", "match_z2", "pen_abs-log-var"}


def test_flat_objective_matches_hand_computation_and_trains_the_implicit_prior():
    built, x = build("wae")
    model = built.model
    torch.manual_seed(2)
    terms = built.objective(x)
    u, w = terms.scalars(), {k: v.item() for k, v in terms.weighted.items()}

    torch.manual_seed(2)  # eps_1, then the implicit prior: z_2 ~ N(0, I), z_1 ~ p(z_1 | z_2)
    m1, lv1 = linear(model.encoders[0], x)
    z1 = m1 + torch.randn_like(m1) * (0.5 * lv1).exp()
    z2 = torch.randn(6, 1)
    mu1, dlv1 = linear(model.decoders[1], z2)
    z1_prior = mu1 + torch.randn_like(mu1) * (0.5 * dlv1).exp()
    x_hat, _ = linear(model.decoders[0], z1)

    assert set(terms.unweighted) == {"rec_x", "match_z1", "pen_abs-log-var"}
    assert u["rec_x"] == pytest.approx(((x - x_hat) ** 2).sum(1).mean().item(), rel=1e-5)
    assert u["match_z1"] == pytest.approx(hand_mmd(z1, z1_prior).item(), rel=1e-4, abs=1e-6)
    assert w["pen_abs-log-var"] == pytest.approx(0.01 * lv1.abs().sum(1).mean().item(), rel=1e-5)

    terms.total.backward()
    assert model.decoders[1].head.mean.weight.grad.abs().sum() > 0, "the prior decoder must learn"
    assert model.encoders[1].head.mean.weight.grad is None, "Eq. (7) does not involve q(z_2|z_1)"


def test_analytic_expectation_agrees_with_monte_carlo():
    torch.manual_seed(0)
    target = torch.randn(3, 4)
    decoded = Gaussian(torch.randn(3, 4), torch.randn(3, 4) * 0.3)
    cost = SquaredEuclidean()
    analytic = expected_cost(cost, target, decoded)
    draws = torch.stack([cost(target, decoded.rsample()) for _ in range(20000)])
    assert torch.allclose(analytic, draws.mean(0), rtol=0.02)
    assert torch.allclose(expected_cost(cost, target, Gaussian(decoded.mean)),
                          cost(target, decoded.mean))


@pytest.mark.parametrize("name", ["l2", "l1", "bce"])
def test_costs_without_closed_form_use_a_sample(name):
    from hierot.registry import costs

    cost = costs.build(costs.tagged_options(name)(name=name))
    assert not cost.closed_form
    target = torch.rand(4, 5)
    reconstruction = torch.rand(4, 5).clamp(0.05, 0.95)
    values = cost(target, reconstruction)
    assert values.shape == (4,) and torch.all(values >= 0)
    if name == "l1":
        assert values == pytest.approx((target - reconstruction).abs().sum(1))
    if name == "l2":
        assert values == pytest.approx(((target - reconstruction) ** 2).sum(1).sqrt())
    if name == "bce":
        manual = -(target * reconstruction.log() + (1 - target) * (1 - reconstruction).log()).sum(1)
        assert values == pytest.approx(manual, rel=1e-5)


def test_sq_log_var_penalty():
    from hierot.components import LayerOutputs
    from hierot.registry import penalties

    penalty = penalties.build(penalties.tagged_options("sq-log-var")(name="sq-log-var"),
                              num_layers=2)
    assert penalty.weights == pytest.approx([1e-3, 1e-4])  # the paper's 10^-(2+i)
    lv = [torch.full((3, 2), 2.0), torch.full((3, 1), -1.0)]
    outputs = LayerOutputs([Gaussian(torch.zeros(3, 2), lv[0]), Gaussian(torch.zeros(3, 1), lv[1])])
    assert penalty(outputs).tolist() == pytest.approx([8.0, 1.0])
    assert math.isfinite(float(penalty(outputs).sum()))
