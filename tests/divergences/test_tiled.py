"""The tiled reductions (hierot.divergences.tiled) and the ``online`` backends of mmd and sinkhorn:
the same values and gradients as the dense computations, GeomLoss's tensorized Sinkhorn included,
in float64 to 1e-5 relative."""

from __future__ import annotations

import geomloss
import pytest
import torch
from pydantic import ValidationError

from hierot.divergences.helpers import squared_distances
from hierot.divergences.mmd import MMD, MMDOptions
from hierot.divergences.sinkhorn import Sinkhorn, SinkhornOptions
from hierot.divergences.tiled import pair_sum, softmin, tiles
from hierot.errors import HierotError

RTOL = 1e-5


def pair(n=45, m=31, d=3, shift=0.7, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = scale * torch.randn(m, d, generator=gen, dtype=torch.float64) + shift
    return x.requires_grad_(), y.requires_grad_()


def value_and_grads(fn, x, y):
    value = fn(x, y)
    return (value.detach(), *torch.autograd.grad(value, (x, y), allow_unused=True))


def assert_close(got, want):
    for a, b in zip(got, want, strict=True):
        assert b is not None and a is not None
        a, b = a.detach(), b.detach()
        scale = b.abs().max().clamp_min(1e-12)
        assert float((a - b).abs().max() / scale) < RTOL, (a, b)


def gauss(d2, derivative):
    return -(-d2).exp() if derivative else (-d2).exp()


def test_tiles_cover_the_range_once():
    assert [(s.start, s.stop) for s in tiles(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert tiles(0, 4) == []


@pytest.mark.parametrize("tile", [4, 7, 64])
def test_pair_sum_matches_dense_in_both_arguments(tile):
    x, y = pair()
    dense = value_and_grads(lambda a, b: torch.exp(-squared_distances(a, b)).sum(), x, y)
    tiled = value_and_grads(lambda a, b: pair_sum(a, b, gauss, tile_size=tile), x, y)
    assert_close(tiled, dense)


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("tile", [4, 7, 64])
def test_pair_sum_of_a_sample_with_itself(tile, exclude):
    x, _ = pair()

    def dense(a):
        k = torch.exp(-squared_distances(a, a))
        return k.sum() - k.diagonal().sum() if exclude else k.sum()

    def tiled(a):
        return pair_sum(a, None, gauss, tile_size=tile, exclude_diagonal=exclude)

    want, got = dense(x), tiled(x)
    assert_close((got, *torch.autograd.grad(got, x)), (want, *torch.autograd.grad(want, x)))


def test_pair_sum_builds_no_graph_for_constants():
    x, y = pair()
    assert not pair_sum(x.detach(), None, gauss).requires_grad
    assert pair_sum(x, y.detach(), gauss).requires_grad


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("tile", [5, 64])
def test_softmin_matches_dense_logsumexp_and_its_gradient_in_x(p, tile):
    x, y = pair()
    h = torch.randn(len(y), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    eps = 0.3

    def dense(a):
        sq = squared_distances(a, y.detach()) if p == 1 else (
            (a * a).sum(1)[:, None] + (y.detach() ** 2).sum(1) - 2 * a @ y.detach().T)
        cost = sq.clamp_min(1e-8).sqrt() if p == 1 else sq / 2
        return -eps * torch.logsumexp(h - cost / eps, dim=1)

    weights = torch.linspace(0.5, 1.5, len(x), dtype=torch.float64)
    want, got = (dense(x) * weights).sum(), (softmin(x, y, h, eps, p=p, tile_size=tile) * weights)
    got = got.sum()
    assert_close((got, *torch.autograd.grad(got, x)), (want, *torch.autograd.grad(want, x)))


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("scales", ["wae", (0.5, 3.0)])
@pytest.mark.parametrize("shape", [(45, 31, 3), (16, 70, 2)])
def test_mmd_online_equals_tensorized(kernel, estimator, scales, shape):
    n, m, d = shape
    x, y = pair(n, m, d)
    common = {"kernel": kernel, "estimator": estimator, "scales": scales}
    dense = MMD(MMDOptions(backend="tensorized", **common))
    online = MMD(MMDOptions(backend="online", tile_size=16, **common))
    assert_close(value_and_grads(online, x, y), value_and_grads(dense, x, y))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("blur", [0.05, 0.5])
@pytest.mark.parametrize("scaling", [0.5, 0.8])
@pytest.mark.parametrize("shape", [(45, 31, 3), (20, 60, 5)])
def test_sinkhorn_online_equals_geomloss_tensorized(p, blur, scaling, shape):
    n, m, d = shape
    x, y = pair(n, m, d)
    ours = Sinkhorn(SinkhornOptions(backend="online", p=p, blur=blur, scaling=scaling,
                                    tile_size=16))
    theirs = geomloss.SamplesLoss("sinkhorn", p=p, blur=blur, scaling=scaling, debias=True,
                                  backend="tensorized")
    assert_close(value_and_grads(ours, x, y), value_and_grads(theirs, x, y))
    # and through hierot's own geomloss backend, the tensorized one
    dense = Sinkhorn(SinkhornOptions(backend="geomloss", p=p, blur=blur, scaling=scaling))
    assert_close(value_and_grads(ours, x, y), value_and_grads(dense, x, y))


def test_sinkhorn_online_is_zero_on_identical_samples_and_keeps_no_grad_mode():
    x, _ = pair()
    divergence = Sinkhorn(SinkhornOptions(backend="online", tile_size=16))
    assert abs(float(divergence(x, x.detach().clone()).detach())) < 1e-10
    with torch.no_grad():
        assert not divergence(x, x.detach() + 1).requires_grad
        assert not torch.is_grad_enabled()


def test_auto_picks_by_size_and_gives_the_same_numbers():
    mmd = MMDOptions(tile_size=64)
    assert mmd.backend == "auto"
    assert mmd.resolved_backend(32, 32) == "tensorized"
    assert mmd.resolved_backend(40, 40) == "online"
    sink = SinkhornOptions(backend="auto", tile_size=32)
    assert sink.resolved_backend(32, 32) == "geomloss"
    assert sink.resolved_backend(33, 8) == "online"
    x, y = pair(40, 40)
    assert_close(value_and_grads(MMD(mmd), x, y),
                 value_and_grads(MMD(MMDOptions(backend="tensorized")), x, y))
    small = SinkhornOptions(backend="auto", tile_size=40)
    assert_close(value_and_grads(Sinkhorn(sink), x, y), value_and_grads(Sinkhorn(small), x, y))


def test_float32_online_close_to_float64():
    x, y = pair(200, 150, 8)
    for divergence in (MMD(MMDOptions(backend="online", tile_size=64)),
                       Sinkhorn(SinkhornOptions(backend="online", tile_size=64))):
        exact = float(divergence(x, y).detach())
        single = float(divergence(x.float(), y.float()).detach())
        assert abs(single - exact) <= 1e-4 * abs(exact) + 1e-6


@pytest.mark.parametrize(
    "model, options, field",
    [
        (MMDOptions, {"tile_size": 8}, "tile_size"),
        (MMDOptions, {"tile_size": 2**20}, "tile_size"),
        (MMDOptions, {"backend": "keops"}, "backend"),
        (SinkhornOptions, {"tile_size": 0}, "tile_size"),
        (SinkhornOptions, {"backend": "pot", "tile_size": 256}, "tile_size"),
        (SinkhornOptions, {"backend": "online", "reach": 1.0}, "reach"),
        (SinkhornOptions, {"backend": "online", "max_iter": 10}, "max_iter"),
    ],
)
def test_bad_backend_options_name_the_field(model, options, field):
    with pytest.raises(ValidationError, match=field):
        model(**options)


def test_tile_size_of_the_wrong_backend_names_the_right_ones():
    with pytest.raises(ValidationError, match="tile_size only applies to backend 'online' or"):
        SinkhornOptions(backend="geomloss", tile_size=256)


def test_out_of_memory_names_divergence_size_and_backend():
    # 2**19 + 2**19 samples: the tensorized (n+m)^2 float32 matrix would take 4 TiB
    x = torch.zeros(2**19, 1)
    with pytest.raises(HierotError, match=r"mmd ran out of memory on 524288 samples.*"
                                          r"'tensorized': use backend: online"):
        MMD(MMDOptions(backend="tensorized"))(x, x + 1)


def test_oom_guard_passes_other_errors_through():
    from hierot.divergences.tiled import oom_guard

    with pytest.raises(RuntimeError, match="shape mismatch"), oom_guard("mmd", 1, 1, "online", ""):
        raise RuntimeError("shape mismatch")


def test_mmd_prior_term_needs_no_backward_pass():
    # prior samples without gradients: the prior-prior sum is no node of the graph
    x, y = pair()
    value = MMD(MMDOptions(backend="online", tile_size=16))(x, y.detach())
    nodes, todo = set(), [value.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            todo += [parent for parent, _ in node.next_functions]
    pair_sums = [n for n in nodes if "PairSum" in type(n).__name__]
    assert len(pair_sums) == 2  # x with itself, x with y
