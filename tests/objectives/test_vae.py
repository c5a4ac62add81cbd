"""The VAE objectives against known answers: the ELBO and log p(x) of a one-layer model by
quadrature, the ladder's merge by hand, warm-up, free bits, the continuous Bernoulli's
normaliser."""

from __future__ import annotations

import math

import pytest
import torch

import hierot
from hierot.components import DataSplits
from hierot.distributions import Gaussian
from hierot.evaluation._metrics import importance_weighted_log_likelihood, kl_per_layer
from hierot.objectives.base import gaussian_kl
from hierot.objectives.ladder import precision_weighted
from hierot.objectives.vae import pixel_log_likelihood
from hierot.spec.loading import load_spec

LINEAR = {"encoder": {"name": "mlp", "hidden": []}, "decoder": {"name": "mlp", "hidden": []}}


def one_layer(objective: str = "hvae", **options):
    layer = {"latent_shape": [1], **LINEAR, "decoder_head": "deterministic"}
    layer["decoder"] = {"name": "mlp", "hidden": [], "output": "sigmoid"}
    spec = load_spec({"data": {"name": "digits"}, "layers": [layer], "train": {"steps": 1},
                      "objective": {"name": objective, **options}})
    x = (torch.rand(64, 3, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    built = hierot.build(spec, data=DataSplits(x, x))
    with torch.no_grad():  # an informative decoder, so that q is far from the true posterior
        head = built.model.decoders[0].head.mean
        head.weight.copy_(torch.tensor([[3.0], [-2.0], [1.5]]))
        head.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    return built.objective.eval(), x


def quadrature(objective, x):
    """log p(x), and E_q log p(x|z) - KL(q || N(0, 1)), by a fine grid over z."""
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)[:, None]
    dz = float(z[1] - z[0])
    probs = objective.model.decoders[0](z.float()).mean.double().clamp(1e-6, 1 - 1e-6)  # as p(x|z)
    x64 = x.double()[:, None, :]
    log_lik = (x64 * probs.log() + (1 - x64) * (-probs).log1p()).sum(-1)
    log_prior = -0.5 * (z.squeeze(1) ** 2 + math.log(2 * math.pi))
    log_px = torch.logsumexp(log_lik + log_prior, 1) + math.log(dz)
    q = objective.model.encoders[0](x)
    mean, var = q.mean.double(), q.log_var.double().exp()
    log_q = -0.5 * ((z.squeeze(1) - mean) ** 2 / var + var.log() + math.log(2 * math.pi))
    expected = (log_q.exp() * log_lik).sum(1) * dz
    kl = 0.5 * (var + mean**2 - 1 - var.log()).squeeze(1)
    return log_px, expected - kl


@torch.no_grad()
def test_hvae_elbo_and_log_likelihood_agree_with_quadrature():
    objective, x = one_layer()
    log_px, elbo = quadrature(objective, x)
    torch.manual_seed(0)
    k = 20000
    draws = objective.elbo(x.repeat_interleave(k, 0)).double().view(len(x), k)
    standard_error = draws.std(1) / math.sqrt(k)
    assert ((draws.mean(1) - elbo).abs() < 4 * standard_error + 1e-3).all()
    assert draws.mean().item() == pytest.approx(elbo.mean().item(), abs=0.01)
    # the training terms are the negative ELBO at the same draw
    torch.manual_seed(1)
    terms = objective(x)
    torch.manual_seed(1)
    assert -(terms.unweighted["rec_x"] + terms.unweighted["kl_z1"]) == pytest.approx(
        objective.elbo(x).mean().item(), rel=1e-5)
    # importance weighting: above the ELBO, rising with K, towards log p(x) from below
    many = x.repeat(50, 1)  # 3,200 points: the K = 1 bound's standard error is about 0.03
    bounds = [importance_weighted_log_likelihood(objective, many, samples=k, seed=2)["log_px"]
              for k in (1, 10, 1000)]
    assert bounds[0] == pytest.approx(elbo.mean().item(), abs=0.15)
    assert bounds[0] < bounds[1] < bounds[2] <= log_px.mean().item() + 1e-3
    assert bounds[2] == pytest.approx(log_px.mean().item(), abs=0.02)
    assert elbo.mean() < log_px.mean() - 0.05, "the check needs a visible gap"


def test_continuous_bernoulli_is_normalised():
    x = torch.linspace(0, 1, 20001)[:, None]
    for mu in (0.05, 0.3, 0.5, 0.5 + 2e-4, 0.93):
        density = pixel_log_likelihood(x, torch.full_like(x, mu), "continuous-bernoulli").exp()
        assert torch.trapezoid(density, x.squeeze(1)).item() == pytest.approx(1.0, abs=1e-3), mu
    plain = pixel_log_likelihood(x[:3], torch.full((3, 1), 0.3), "bernoulli")
    expected = x[:3, 0] * math.log(0.3) + (1 - x[:3, 0]) * math.log(0.7)
    assert plain.tolist() == pytest.approx(expected.tolist())


def test_precision_weighted_merge_by_hand():
    up = Gaussian(torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]]))
    down = Gaussian(torch.tensor([[3.0, 0.0]]), torch.tensor([[math.log(3.0), math.log(0.25)]]))
    merged = precision_weighted(up, down)
    # precisions 1 + 1/3 and 1/4 + 4
    var = torch.tensor([[1 / (1 + 1 / 3), 1 / (0.25 + 4)]])
    mean = var * torch.tensor([[1.0 * 1 + 3.0 / 3, -2.0 / 4 + 0.0 * 4]])
    torch.testing.assert_close(merged.var, var)
    torch.testing.assert_close(merged.mean, mean)


def linear(module, inputs):
    head = module.head
    return (inputs @ head.mean.weight.T + head.mean.bias,
            inputs @ head.log_var.weight.T + head.log_var.bias)


@torch.no_grad()
def test_lvae_inference_by_hand():
    pixels = {"name": "mlp", "hidden": [], "output": "sigmoid"}
    layers = [{"latent_shape": [2], **LINEAR, "decoder": pixels}, {"latent_shape": [1], **LINEAR}]
    spec = load_spec({"data": {"name": "digits"}, "layers": layers, "train": {"steps": 1},
                      "objective": {"name": "lvae"}})
    x = torch.rand(5, 3)
    built = hierot.build(spec, data=DataSplits(x, x))
    model, objective = built.model, built.objective
    torch.manual_seed(4)
    inference = objective.infer(x)

    torch.manual_seed(4)
    m1, lv1 = linear(model.encoders[0], x)  # bottom-up: d_1 = mu_hat_1, a mean, not a sample
    m2, lv2 = linear(model.encoders[1], m1)
    z2 = m2 + torch.randn_like(m2) * (0.5 * lv2).exp()  # q(z_2 | x) = N(mu_hat_2, var_hat_2)
    mp, lvp = linear(model.decoders[1], z2)  # p(z_1 | z_2)
    var = 1 / (1 / lv1.exp() + 1 / lvp.exp())
    mean = var * (m1 / lv1.exp() + mp / lvp.exp())
    z1 = mean + torch.randn_like(mean) * var.sqrt()

    torch.testing.assert_close(inference.codes[1], z2)
    torch.testing.assert_close(inference.posteriors[0].mean, mean)
    torch.testing.assert_close(inference.posteriors[0].var, var)
    torch.testing.assert_close(inference.codes[0], z1)
    kl1 = 0.5 * (lvp - var.log() + (var + (mean - mp) ** 2) / lvp.exp() - 1)
    torch.testing.assert_close(inference.kl(0), kl1)
    torch.testing.assert_close(inference.kl(1),
                               gaussian_kl(Gaussian(m2, lv2), Gaussian(0 * m2, 0 * m2)))
    assert [inference.analytic(i) for i in range(2)] == [True, True]
    # evaluation reads the same posterior through encode (means, top-down)
    _, codes = objective.encode(x, sample=False)
    mp0, lvp0 = linear(model.decoders[1], m2)
    var0 = 1 / (1 / lv1.exp() + 1 / lvp0.exp())
    torch.testing.assert_close(codes[0], var0 * (m1 / lv1.exp() + mp0 / lvp0.exp()))


def test_kl_warm_up_and_free_bits():
    objective, x = one_layer(warmup_steps=10)
    values = {}
    for step in (0, 5, 10, None):
        objective.set_step(step)
        torch.manual_seed(0)
        terms = objective(x)
        values[step] = (terms.unweighted["kl_z1"].item(), terms.weighted["kl_z1"].item())
    kl = values[None][0]
    assert all(v[0] == pytest.approx(kl) for v in values.values())
    assert [values[s][1] for s in (0, 5, 10, None)] == pytest.approx([0.0, 0.5 * kl, kl, kl])

    objective, x = one_layer(free_bits=50.0)
    terms = objective(x)
    assert terms.weighted["kl_z1"].item() == pytest.approx(50.0)  # one dimension, KL below 50
    assert terms.unweighted["kl_z1"].item() < 50.0


def test_the_trainer_tells_the_objective_the_step(tmp_path):
    layer = {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
             "decoder": {"name": "mlp", "hidden": [8], "output": "sigmoid"}}
    spec = {"data": {"name": "digits", "limit": 64}, "layers": [layer],
            "objective": {"name": "hvae", "warmup_steps": 2},
            "train": {"steps": 3, "batch_size": 16, "log_every": 1, "progress": False}}
    hierot.fit(spec, out=tmp_path / "run")
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    weighted = [float(r.split(",")[header.index("w_kl_z1")]) for r in rows[1:]]
    plain = [float(r.split(",")[header.index("kl_z1")]) for r in rows[1:]]
    assert weighted[0] == 0.0 and plain[0] > 0  # beta = 0 / 2 at the first step
    assert weighted[1] == pytest.approx(0.5 * plain[1]) and weighted[2] == pytest.approx(plain[2])


def test_kl_per_layer_marks_its_estimates():
    layers = [{"latent_shape": [3], **LINEAR,
               "decoder": {"name": "mlp", "hidden": [], "output": "sigmoid"}},
              {"latent_shape": [2], **LINEAR}, {"latent_shape": [1], **LINEAR}]
    x = torch.rand(40, 4)
    for name, expected in (("hvae", ["monte-carlo", "monte-carlo", "analytic"]),
                           ("lvae", ["analytic"] * 3)):
        spec = load_spec({"data": {"name": "digits"}, "layers": layers, "train": {"steps": 1},
                          "objective": {"name": name}})
        objective = hierot.build(spec, data=DataSplits(x, x)).objective.eval()
        result = kl_per_layer(objective, x)
        assert list(result["estimate"].values()) == expected
        assert all(math.isfinite(v) for v in result["nats"].values())
    # a WAE whose middle decoder is deterministic: that layer's KL is undefined
    spec = load_spec({"data": {"name": "digits"}, "layers": [
        layers[0], layers[1], {**layers[2], "decoder_head": "deterministic"}],
                      "train": {"steps": 1}})
    objective = hierot.build(spec, data=DataSplits(x, x)).objective.eval()
    result = kl_per_layer(objective, x)
    assert result["nats"]["z2"] is None and result["estimate"]["z2"] == "undefined"
    assert result["nats"]["z1"] is not None and result["estimate"]["z3"] == "analytic"


@pytest.mark.parametrize("name", ["hvae", "lvae"])
def test_vaes_train_under_bf16_with_float32_terms(name, tmp_path):
    layers = [{"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [8]},
               "decoder": {"name": "mlp", "hidden": [8], "output": "sigmoid"}},
              {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
               "decoder": {"name": "mlp", "hidden": [8]}}]
    spec = {"data": {"name": "digits", "limit": 64}, "layers": layers, "device": "cpu",
            "objective": {"name": name},
            "train": {"steps": 2, "batch_size": 16, "log_every": 1, "progress": False,
                      "precision": "bf16"}}
    result = hierot.fit(spec, out=tmp_path / "run")
    assert result.steps == 2 and all(math.isfinite(v) for v in result.last_metrics.values())
    built = hierot.build(load_spec(spec))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = built.objective(built.data.to_float(built.data.train_x[:16]))
    assert all(v.dtype == torch.float32 for v in terms.weighted.values())
