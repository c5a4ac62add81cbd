"""``sinkhorn`` with ``backend: pot``: its stopping tolerance and its envelope gradients.

The POT backend solves OT(x, y), OT(x, x) and OT(y, y) with ``ot.bregman.sinkhorn_log`` (warm
started by epsilon-annealing) and differentiates the value at the optimal plan. These tests pin
that to POT's own envelope-gradient solver (``ot.solve(..., grad="envelope")``) and to GeomLoss,
in float64, and check what the default tolerance buys at the default blur.
"""

from __future__ import annotations

import warnings

import ot
import pytest
import torch

from hierot.divergences.sinkhorn import POT_TOLERANCE
from hierot.registry import divergences


def build(**options):
    return divergences.build(divergences.tagged_options("sinkhorn")(name="sinkhorn", **options))


def clouds(n, m, d, shift=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x, torch.randn(m, d, generator=gen, dtype=torch.float64) + shift


def value_and_gradients(divergence, x, y):
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    value = divergence(x, y)
    value.backward()
    return value.detach(), x.grad, y.grad


def relative(a, b) -> float:
    return float((a - b).norm() / b.norm())


def ot_solve_envelope(x, y, eps, tol):
    """OT_eps(x, y) by POT's own solver with envelope gradients (cost |x - y|^2 / 2)."""
    cost = torch.cdist(x, y) ** 2 / 2
    uniform = [cost.new_full((k,), 1.0 / k) for k in cost.shape]
    return ot.solve(cost, *uniform, reg=eps, reg_type="entropy", grad="envelope", tol=tol,
                    max_iter=100_000).value


@pytest.mark.parametrize("blur", [1.0, 0.5])
def test_pot_equals_ot_solve_with_envelope_gradients(blur):
    """S_eps = OT(x, y) - (OT(x, x) + OT(y, y)) / 2 with each term from ``ot.solve(...,
    grad="envelope")``: the same value and gradients in float64, to 1e-8 relative (both solved to
    a marginal error of 1e-11)."""
    x, y = clouds(40, 30, 3)
    ours = value_and_gradients(build(backend="pot", blur=blur, tolerance=1e-11, max_iter=100_000),
                               x, y)

    def pot_divergence(a, b):
        eps, tol = blur**2, 1e-11
        return ot_solve_envelope(a, b, eps, tol) - 0.5 * (
            ot_solve_envelope(a, a, eps, tol) + ot_solve_envelope(b, b, eps, tol))

    theirs = value_and_gradients(pot_divergence, x, y)
    assert ours[0].item() == pytest.approx(theirs[0].item(), rel=1e-8)
    assert relative(ours[1], theirs[1]) < 1e-8
    assert relative(ours[2], theirs[2]) < 1e-8


def test_pot_gradients_equal_geomloss_converged():
    """Against GeomLoss's Sinkhorn annealed slowly (scaling 0.999, so its last iterate is near
    the fixed point) at blur 1: value to 1e-6 and gradients in x and y to 1e-3 relative (float64;
    at scaling 0.99 GeomLoss's own gradient is still 4e-3 away)."""
    x, y = clouds(30, 25, 3, shift=1.0)
    pot = value_and_gradients(build(backend="pot", blur=1.0, tolerance=1e-12, max_iter=100_000),
                              x, y)
    geomloss = value_and_gradients(build(blur=1.0, scaling=0.999), x, y)
    assert pot[0].item() == pytest.approx(geomloss[0].item(), rel=1e-6)
    assert relative(pot[1], geomloss[1]) < 1e-3
    assert relative(pot[2], geomloss[2]) < 1e-3


def test_pot_default_tolerance_converges_at_default_blur():
    """The defaults (blur 0.05, tolerance POT_TOLERANCE, max_iter 1000) on a 2-dimensional batch
    of 64 (other batches may need up to 1,500 iterations: ``sinkhorn_solves``): the solves stop
    at the tolerance (no max_iter warning), the cross term taking hundreds of iterations and the
    annealed self-terms one check (at most 11), and the value is within 3 % of a solve to a
    tolerance 100 times tighter (what 1e-3 bought in the measurement: 2 %)."""
    x, y = clouds(64, 64, 2)
    default = build(backend="pot")
    assert default.options.tolerance == POT_TOLERANCE
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a solve reaching max_iter warns, failing the test
        value = default(x, y).item()
    cross, *selves = default.iterations
    assert 100 < cross < default.options.max_iter and max(selves) <= 11
    tight = build(backend="pot", tolerance=POT_TOLERANCE / 100, max_iter=100_000)
    reference = tight(x, y).item()
    assert tight.iterations[0] > 2 * cross
    assert value == pytest.approx(reference, rel=0.03)


def test_share_benchmark_says_why_pot_is_over_the_target():
    """``divergence_scaling --share``: a divergence over 5 % of the step gets a reason with the
    numbers, from what the solver did (POT's iterations of its last call); one under gets none."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's benchmarks
    from benchmarks._step_share import share_methods, why_over

    divergence = build(backend="pot", blur=0.5)
    divergence(*clouds(32, 32, 2))
    cross, *selves = divergence.iterations
    why = why_over(divergence, div_s=0.010, step_s=0.100)
    assert why is not None and f"{cross} iterations on OT(x, y)" in why
    assert f"+ {sum(selves)} on the self-terms" in why and "tolerance 0.001" in why
    assert why_over(divergence, div_s=0.004, step_s=0.100) is None
    assert "ms > 5 % of 100 ms" in why_over(build(), 0.010, 0.1)
    built_ins = {options["name"] for options in share_methods().values()}
    assert {"mmd", "sinkhorn", "wasserstein", "sliced-wasserstein"} <= built_ins


def test_carried_potentials_are_the_fixed_point_on_the_same_batch():
    """``sinkhorn_solves``' warm start carried across steps extrapolates the old potentials by
    soft c-transforms; on the very batch they were solved for, that is one more Sinkhorn update
    from the solution, so the plan it gives has (near) exact marginals and POT stops at once."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's benchmarks
    from benchmarks.sinkhorn_solves import carried_start

    x, y = clouds(48, 48, 2)
    eps, cost = 0.25, torch.cdist(x, y) ** 2 / 2
    u, v = carried_start(x, y, x, y, eps, tolerance=1e-10)
    plan = torch.exp(-cost / eps + u[:, None] + v[None, :])
    uniform = torch.full((48,), 1 / 48, dtype=torch.float64)
    assert torch.allclose(plan.sum(0), uniform, atol=1e-12)  # g is the c-transform of f
    assert torch.allclose(plan.sum(1), uniform, atol=1e-8)
    _, log = ot.bregman.sinkhorn_log(uniform, uniform, cost, reg=eps, stopThr=1e-8,
                                     warmstart=(u, v), log=True)
    assert log["niter"] == 0
    _, cold = ot.bregman.sinkhorn_log(uniform, uniform, cost, reg=eps, stopThr=1e-8, log=True)
    assert cold["niter"] > 0
