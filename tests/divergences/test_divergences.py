"""Every registered divergence (plug-ins included) has the properties a latent divergence needs,
and the built-ins agree with known answers."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy.optimize import linear_sum_assignment

from hierot.errors import HierotError
from hierot.registry import divergences

NAMES = divergences.names()


def build(name: str, **options):
    return divergences.build(divergences.tagged_options(name)(name=name, **options))


def evaluate(divergence, x, y):
    """One evaluation with torch's generator reset, so stochastic divergences (fresh random
    projections) see the same randomness on every call."""
    torch.manual_seed(1234)
    return divergence(x, y)


def clouds(device, dtype=torch.float32, n=96, m=80, d=4, shift=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(m, d, generator=gen, dtype=torch.float64) + shift
    return x.to(device, dtype), y.to(device, dtype)


# -- properties of every registered divergence ----------------------------------------------------
@pytest.fixture(params=NAMES)
def name(request) -> str:
    return request.param


def test_default_options_build(name):
    divergence = build(name)
    assert callable(divergence)


def test_positive_between_different_distributions(name, device):
    x, y = clouds(device)
    value = evaluate(build(name), x, y)
    assert value.shape == () and value.device.type == device
    assert value.item() > 1e-3


def test_near_zero_on_identical_samples(name, device):
    """Exactly 0 for the debiased/OT ones; U-statistics are O(1/n) off, so compare with the value
    at a one-standard-deviation shift."""
    x, y = clouds(device)
    same = evaluate(build(name), x, x).item()
    apart = evaluate(build(name), x, y).item()
    assert abs(same) <= 0.1 * apart + 1e-5


def test_gradients_finite_in_both_arguments(name, device):
    x, y = clouds(device)
    x.requires_grad_(True)
    y.requires_grad_(True)
    evaluate(build(name), x, y).backward()
    for grad in (x.grad, y.grad):
        assert grad is not None and torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


def test_invariant_to_sample_order(name, device):
    x, y = clouds(device)
    divergence = build(name)
    gen = torch.Generator().manual_seed(1)
    px, py = torch.randperm(len(x), generator=gen), torch.randperm(len(y), generator=gen)
    expected = evaluate(divergence, x, y)
    assert torch.allclose(evaluate(divergence, x[px], y[py]), expected, rtol=1e-4, atol=1e-5)


def test_feature_maps_are_flattened(name, device):
    x, y = clouds(device, n=40, m=40, d=2 * 3 * 3)
    divergence = build(name)
    maps = evaluate(divergence, x.view(-1, 2, 3, 3), y.view(-1, 2, 3, 3))
    flat = evaluate(divergence, x, y)
    assert torch.allclose(maps, flat, rtol=1e-5, atol=1e-6)


def test_float64(name, device):
    x, y = clouds(device, dtype=torch.float64)
    x.requires_grad_(True)
    divergence = build(name)
    value = evaluate(divergence, x, y)
    assert value.dtype == torch.float64
    value.backward()
    assert x.grad.dtype == torch.float64 and torch.isfinite(x.grad).all()
    single = evaluate(divergence, x.detach().float(), y.float()).item()
    assert single == pytest.approx(value.item(), rel=1e-3, abs=1e-4)


def test_mismatched_shapes_are_user_errors(name):
    divergence = build(name)
    with pytest.raises(HierotError):
        divergence(torch.randn(8, 3), torch.randn(8, 4))


def test_unknown_option_rejected(name):
    with pytest.raises(ValidationError):
        divergences.tagged_options(name)(name=name, no_such_option=1)


# -- known answers -------------------------------------------------------------------------------
def exact_w(x: np.ndarray, y: np.ndarray, p: int) -> float:
    """W_p^p between equal-size uniform clouds: an optimal plan is a permutation."""
    cost = np.linalg.norm(x[:, None] - y[None], axis=-1) ** p
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_matches_assignment(p, device):
    x, y = clouds(device, dtype=torch.float64, n=12, m=12, d=3, shift=0.5)
    x.requires_grad_(True)
    value = build("wasserstein", p=p)(x, y)
    assert value.item() == pytest.approx(exact_w(x.detach().cpu().numpy(), y.cpu().numpy(), p))
    if p == 2:  # gradient of (1/n) sum_i |x_i - y_sigma(i)|^2 at the optimal permutation
        value.backward()
        cost = torch.cdist(x.detach(), y) ** 2
        _, cols = linear_sum_assignment(cost.cpu().numpy())
        assert torch.allclose(x.grad, 2 * (x.detach() - y[cols]) / len(x), atol=1e-8)


def test_sinkhorn_tends_to_half_w2_as_blur_shrinks():
    x, y = clouds("cpu", dtype=torch.float64, n=12, m=12, d=3, shift=0.5)
    target = exact_w(x.numpy(), y.numpy(), 2) / 2  # geomloss's cost is |x - y|^2 / 2
    errors = [
        abs(build("sinkhorn", blur=blur, scaling=0.9)(x, y).item() - target)
        for blur in (0.5, 0.1, 0.01)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * target


@pytest.mark.parametrize("p", [1, 2])
def test_sinkhorn_backends_agree(p, device):
    x, y = clouds(device, dtype=torch.float64, n=50, m=40, d=3)
    geomloss = build("sinkhorn", p=p, blur=1.0, scaling=0.95)(x, y)
    pot = build("sinkhorn", backend="pot", p=p, blur=1.0, tolerance=1e-8, max_iter=5000)(x, y)
    assert pot.item() == pytest.approx(geomloss.item(), rel=1e-3)


def test_sinkhorn_pot_float32_solve_matches_converged_reference():
    """float32 samples (solved in float64) at blur 0.2 (eps = 0.04 against costs up to ~20): the
    default max_iter reaches a tolerance of 1e-6 (POT would warn otherwise; float32 round-off
    would stall near 1e-5), and the value is that of a longer float64 solve to 5e-7, to 1e-4
    relative."""
    import warnings

    x, y = clouds("cpu", n=64, m=64, d=2, shift=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a solve reaching max_iter warns, failing the test
        reference = build("sinkhorn", backend="pot", blur=0.2, max_iter=20_000,
                          tolerance=5e-7)(x.double(), y.double())
        value = build("sinkhorn", backend="pot", blur=0.2, tolerance=1e-6)(x, y)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-4)


def test_symmetric_warm_start_speeds_up_pot_on_self_terms():
    """The self-terms OT_eps(x, x) at small eps: POT's Sinkhorn from zero does not reach 1e-9 on
    the marginals in 1000 iterations; from the annealed symmetric update (fewer than 20 updates)
    it does in under 100."""
    import ot

    from hierot.divergences.sinkhorn import FINAL_UPDATES, annealed_potentials, epsilon_schedule

    x, _ = clouds("cpu", dtype=torch.float64, n=64, d=2)
    cost = torch.cdist(x, x) ** 2 / 2
    uniform = torch.full((64,), 1 / 64, dtype=torch.float64)
    eps = 0.01

    def iterations(warmstart=None) -> int:
        _, log = ot.bregman.sinkhorn_log(uniform, uniform, cost, reg=eps, numItermax=1000,
                                         stopThr=1e-9, log=True, warn=False, warmstart=warmstart)
        return log["niter"] + 1 if log["err"][-1] < 1e-9 else math.inf

    schedule = epsilon_schedule(cost.max().item(), eps, 0.25)
    assert len(schedule) - 1 + FINAL_UPDATES < 20
    f, g = annealed_potentials(cost, uniform.log(), uniform.log(), schedule, symmetric=True)
    assert f is g
    assert iterations() == math.inf
    assert iterations((uniform.log() + f / eps,) * 2) < 100


def test_sinkhorn_pot_gradient_is_the_plan_gradient():
    """Envelope theorem: d OT_eps / d x_i = sum_j P_ij (x_i - y_j) for the cost |x - y|^2 / 2,
    checked against central finite differences of the converged float64 value."""
    x, y = clouds("cpu", dtype=torch.float64, n=6, m=7, d=2, shift=0.5)
    divergence = build("sinkhorn", backend="pot", blur=1.0, tolerance=1e-11, max_iter=20_000)
    x.requires_grad_(True)
    divergence(x, y).backward()
    step = 1e-6
    numeric = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            shifted = [x.detach().clone() for _ in range(2)]
            shifted[0][i, k] += step
            shifted[1][i, k] -= step
            numeric[i, k] = (divergence(shifted[0], y) - divergence(shifted[1], y)) / (2 * step)
    assert torch.allclose(x.grad, numeric, atol=1e-6)


def test_sinkhorn_pot_gradient_finite_float32(device):
    x, y = clouds(device)
    x.requires_grad_(True)
    build("sinkhorn", backend="pot", blur=1.0)(x, y).backward()
    assert torch.isfinite(x.grad).all()


# Two isotropic Gaussians N(m1, s1^2 I), N(m2, s2^2 I) in d dimensions:
# W_2^2 = |m1 - m2|^2 + d (s1 - s2)^2 and SW_2^2 = |m1 - m2|^2 / d + (s1 - s2)^2.
MEAN_SHIFT, S1, S2, DIM = 2.0, 1.0, 1.5, 2
W2_GAUSS = MEAN_SHIFT**2 + DIM * (S1 - S2) ** 2


def gaussians(n, seed=0):
    """Samples standardised to the exact means and scales, removing the O(n^-1/2) fluctuation
    of the cross term 2 (m1 - m2) . (mean error); what is left is the small shape error."""
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(2, n, DIM, generator=gen, dtype=torch.float64).unbind()
    x = S1 * (x - x.mean(0)) / x.std(0)
    y = S2 * (y - y.mean(0)) / y.std(0)
    y[:, 0] += MEAN_SHIFT
    return x, y


def test_wasserstein_gaussians_closed_form():
    x, y = gaussians(800)
    assert build("wasserstein")(x, y).item() == pytest.approx(W2_GAUSS, rel=0.03)


def test_sinkhorn_gaussians_closed_form():
    x, y = gaussians(600)
    assert build("sinkhorn", blur=0.05)(x, y).item() == pytest.approx(W2_GAUSS / 2, rel=0.02)


def test_sliced_gaussians_closed_form():
    x, y = gaussians(2000)
    value = build("sliced-wasserstein", n_projections=400, seed=0)(x, y).item()
    assert value == pytest.approx(MEAN_SHIFT**2 / DIM + (S1 - S2) ** 2, rel=0.02)


def test_sliced_seed_fixes_projections():
    x, y = clouds("cpu")
    a, b = build("sliced-wasserstein", seed=3), build("sliced-wasserstein", seed=3)
    assert a(x, y).item() == b(x, y).item() == a(x, y).item()
    fresh = build("sliced-wasserstein")
    assert fresh(x, y).item() != fresh(x, y).item()


def naive_gram(a, b, kernel, bandwidths):
    sq = ((a[:, None] - b[None]) ** 2).sum(-1)
    return sum(c / (c + sq) if kernel == "imq" else torch.exp(-sq / c) for c in bandwidths)


def naive_mmd(x, y, kernel, bandwidths, unbiased):
    def within(a):
        g, n = naive_gram(a, a, kernel, bandwidths), len(a)
        return (g.sum() - g.trace()) / (n * (n - 1)) if unbiased else g.mean()

    return within(x) + within(y) - 2 * naive_gram(x, y, kernel, bandwidths).mean()


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_mmd_matches_naive_formula(kernel, estimator):
    x, y = clouds("cpu", dtype=torch.float64, n=30, m=20, d=5)
    wae = [2 * 5 * s for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)]
    expected = naive_mmd(x, y, kernel, wae, estimator == "unbiased")
    got = build("mmd", kernel=kernel, estimator=estimator)(x, y)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    explicit = build("mmd", kernel=kernel, estimator=estimator, scales=[0.5, 3.0])(x, y)
    assert explicit.item() == pytest.approx(
        naive_mmd(x, y, kernel, [0.5, 3.0], estimator == "unbiased").item(), rel=1e-10
    )


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_gradient_matches_autograd_of_naive_formula(kernel):
    """The hand-written backward of the kernel sum against autograd through the naive formula,
    and against finite differences (gradcheck)."""
    from hierot.divergences.mmd import KernelSum

    x, y = clouds("cpu", dtype=torch.float64, n=30, m=20, d=5)
    x.requires_grad_(True)
    wae = [2 * 5 * s for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)]
    (expected,) = torch.autograd.grad(naive_mmd(x, y, kernel, wae, True), x)
    (got,) = torch.autograd.grad(build("mmd", kernel=kernel)(x, y), x)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-14)
    dist = (torch.rand(6, 6, dtype=torch.float64) * 3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: KernelSum.apply(d, (0.5, 2.0), kernel), (dist,))


def naive_shifted_prior_mean(y, kernel, bandwidths, shifts, unbiased):
    """The mean of k(y_i, y_(i+s) mod m) over s = 1..shifts, written out pair by pair."""
    m = len(y)
    values = []
    for s in range(1, shifts + 1):
        for i in range(m):
            sq = ((y[i] - y[(i + s) % m]) ** 2).sum()
            values.append(sum(c / (c + sq) if kernel == "imq" else torch.exp(-sq / c)
                              for c in bandwidths))
    mean = torch.stack(values).mean()
    return mean if unbiased else (1 - 1 / m) * mean + len(bandwidths) / m  # k(0) = 1 per C


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("backend", ["tensorized", "online"])
def test_mmd_prior_pairs_is_the_incomplete_u_statistic(kernel, estimator, backend):
    """``prior_pairs`` replaces only the prior-prior mean, by the mean over ceil(pairs / m)
    cyclic shifts; the x-x and x-y terms and the gradient in x are those of the complete one."""
    x, y = clouds("cpu", dtype=torch.float64, n=30, m=40, d=5)
    wae = [2 * 5 * s for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)]
    unbiased = estimator == "unbiased"
    options = {"kernel": kernel, "estimator": estimator, "backend": backend, "tile_size": 16}
    x.requires_grad_(True)
    complete = build("mmd", **options)(x, y)
    incomplete = build("mmd", **options, prior_pairs=100)(x, y)  # 3 shifts of 40 pairs
    gram = naive_gram(y, y, kernel, wae)
    complete_y = (gram.sum() - gram.trace()) / (40 * 39) if unbiased else gram.mean()
    incomplete_y = naive_shifted_prior_mean(y, kernel, wae, 3, unbiased)
    assert (incomplete - complete).item() == pytest.approx((incomplete_y - complete_y).item(),
                                                           rel=1e-10, abs=1e-14)
    assert not math.isclose(incomplete.item(), complete.item(), rel_tol=1e-6)
    (grad_complete,) = torch.autograd.grad(complete, x)
    (grad_incomplete,) = torch.autograd.grad(incomplete, x)
    assert torch.allclose(grad_incomplete, grad_complete, rtol=1e-10, atol=1e-14)


def test_mmd_prior_pairs_covering_every_pair_is_the_complete_statistic():
    x, y = clouds("cpu", dtype=torch.float64, n=20, m=31, d=3)
    complete = build("mmd")(x, y)
    assert build("mmd", prior_pairs=31 * 15)(x, y).item() == complete.item()  # 15 = (31-1)/2 shifts
    assert build("mmd", prior_pairs=10**9)(x, y).item() == complete.item()


def test_mmd_prior_pairs_is_unbiased():
    """Over independent prior draws, the incomplete prior-prior mean (one shift: m pairs) has the
    complete one's expectation: their mean difference is within 4 standard errors of zero."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 4, dtype=torch.float64, generator=gen)
    complete, incomplete = build("mmd"), build("mmd", prior_pairs=1)
    diffs = torch.tensor([
        (incomplete(x, y) - complete(x, y)).item()
        for y in torch.randn(400, 24, 4, dtype=torch.float64, generator=gen) + 0.3
    ])
    assert diffs.std() > 0
    assert abs(diffs.mean()) < 4 * diffs.std() / math.sqrt(len(diffs))


def test_mmd_defaults_are_the_papers():
    options = divergences.tagged_options("mmd")(name="mmd")
    assert (options.kernel, options.scales, options.estimator) == ("imq", "wae", "unbiased")


def test_mmd_separates_distributions():
    gen = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(2, 300, 8, generator=gen).unbind()
    mmd = build("mmd")
    same, shifted = mmd(x, x2).item(), mmd(x, x2 + 0.5).item()
    assert abs(same) < 0.01 and shifted > 10 * abs(same) and shifted > 0.02


# -- option validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, options",
    [
        ("sinkhorn", {"blur": -0.1}),
        ("sinkhorn", {"backend": "keops"}),
        ("sinkhorn", {"p": 3}),
        ("sinkhorn", {"scaling": 1.0}),
        ("sinkhorn", {"reach": 0.0}),
        ("sinkhorn", {"max_iter": 50}),  # pot-only option with the geomloss backend
        ("sinkhorn", {"backend": "pot", "reach": 1.0}),  # and the converse
        ("sinkhorn", {"geomloss_backend": "cuda"}),
        ("mmd", {"kernel": "laplace"}),
        ("mmd", {"scales": []}),
        ("mmd", {"scales": [1.0, -2.0]}),
        ("mmd", {"scales": "tolstikhin"}),
        ("mmd", {"estimator": "linear"}),
        ("mmd", {"prior_pairs": 0}),
        ("wasserstein", {"p": 3}),
        ("sliced-wasserstein", {"n_projections": 0}),
        ("sliced-wasserstein", {"seed": -1}),
    ],
)
def test_bad_options_rejected(name, options):
    with pytest.raises(ValidationError):
        divergences.tagged_options(name)(name=name, **options)


def test_backend_mismatch_message_names_the_backend():
    with pytest.raises(ValidationError, match="only applies to backend 'pot'"):
        divergences.tagged_options("sinkhorn")(name="sinkhorn", tolerance=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("pykeops") is not None, reason="pykeops installed")
@pytest.mark.parametrize("backend", ["online", "multiscale"])
def test_keops_backends_need_pykeops(backend):
    with pytest.raises(HierotError, match="pip install pykeops"):
        build("sinkhorn", geomloss_backend=backend)


def test_unbiased_needs_two_samples():
    with pytest.raises(HierotError, match="at least 2"):
        build("mmd")(torch.randn(1, 3), torch.randn(5, 3))
    biased = build("mmd", estimator="biased")(torch.randn(1, 3), torch.randn(5, 3))
    assert math.isfinite(biased.item())


def test_sinkhorn_geomloss_keeps_gradients_off_under_no_grad():
    """GeomLoss switches autograd on at its last step; the divergence restores the caller's mode,
    so an evaluation under torch.no_grad() builds no graph after it."""
    x, y = clouds("cpu", n=32, m=32, d=2)
    with torch.no_grad():
        value = build("sinkhorn")(x.requires_grad_(), y)
        assert not torch.is_grad_enabled() and not value.requires_grad
    assert torch.is_grad_enabled()


def test_sinkhorn_pot_reports_non_convergence_once():
    """POT's "did not converge" would repeat at every step: it is counted, and warned about once."""
    import warnings

    divergence = build("sinkhorn", backend="pot", blur=0.05, max_iter=20)
    x, y = clouds("cpu", n=32, m=32, d=2, shift=2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            divergence(x, y)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "reached max_iter=20" in messages[0]
    assert divergence.not_converged >= 3  # the cross term at least, at every call
