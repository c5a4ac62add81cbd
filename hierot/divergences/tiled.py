r"""Tiled reductions over all pairs :math:`(x_i, y_j)` in linear memory (the ``online`` backends).

A quadratic divergence reduces an :math:`n \times m` matrix of pairwise terms to a number or to a
vector. These helpers compute it tile by tile (``tile_size`` rows by ``tile_size`` columns at a
time) and reduce on the fly, in the forward **and** the backward pass: each is a
:class:`torch.autograd.Function` whose backward recomputes the tiles rather than keeping them, so
memory is :math:`O((n + m) d + \mathrm{tile\_size}^2)` whatever :math:`n` and :math:`m`. The time
is the same :math:`O(nm\,d)` as the dense computation (the tiled streaming reductions of KeOps and
FlashAttention, Charlier et al., 2021; Dao et al., 2022), in plain PyTorch, on any device.

A public module: ``mmd`` and ``sinkhorn`` use it, and so can a plug-in (``docs/plugins.md``)::

    from hierot.divergences.tiled import pair_sum, softmin

* :func:`pair_sum`: :math:`\sum_{i, j} \varphi(\|x_i - y_j\|^2)` for a function
  :math:`\varphi` of the squared distance (a kernel, a power of the distance), with its gradient
  in both arguments; ``y=None`` sums over the pairs of ``x`` with itself (each tile pair once);
* :func:`softmin`: the soft :math:`c`-transform
  :math:`f_i = -\varepsilon \log \sum_j \exp(h_j - C(x_i, y_j)/\varepsilon)` of the Sinkhorn
  algorithm (streaming log-sum-exp), with its gradient in ``x`` at fixed ``h`` and ``y``;
* :func:`oom_guard`: turns an out-of-memory error into a :class:`~hierot.errors.HierotError` that
  names the divergence, the sample counts and the backend to switch to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from hierot.divergences.helpers import squared_distances
from hierot.errors import HierotError

__all__ = ["DEFAULT_TILE", "oom_guard", "pair_sum", "softmin", "tiles"]

DEFAULT_TILE = 512
"""Rows (and columns) of one tile: 1 MiB matrices in float32 (cache-sized: larger tiles were
slower on a CPU), 2 MiB in float64."""

PairFunction = Callable[[Tensor, bool], Tensor]
"""``phi(squared_distances, derivative)``: :math:`\\varphi(d^2)`, or its derivative in d^2."""


def tiles(n: int, tile_size: int) -> list[slice]:
    """Consecutive slices of at most ``tile_size`` covering ``range(n)``."""
    return [slice(s, min(s + tile_size, n)) for s in range(0, n, tile_size)]


def _blocks(n: int, m: int | None, tile_size: int) -> Iterator[tuple[slice, slice, bool]]:
    """Tile pairs (rows, columns, on_diagonal); with ``m=None`` only those with column >= row."""
    rows = tiles(n, tile_size)
    if m is None:
        for a, i in enumerate(rows):
            for j in rows[a:]:
                yield i, j, i == j
    else:
        for i in rows:
            for j in tiles(m, tile_size):
                yield i, j, False


def _masked(values: Tensor, on_diagonal: bool, exclude_diagonal: bool) -> Tensor:
    if on_diagonal and exclude_diagonal:
        values.diagonal().zero_()
    return values


class _PairSum(torch.autograd.Function):
    """sum_ij phi(|x_i - y_j|^2), tile by tile; the backward recomputes phi' per tile."""

    @staticmethod
    def forward(ctx, x, y, phi, tile_size, exclude_diagonal):
        ctx.save_for_backward(x, y)
        ctx.phi, ctx.tile_size, ctx.exclude = phi, tile_size, exclude_diagonal
        symmetric = y is None or y.numel() == 0
        other = x if symmetric else y
        total = x.new_zeros(())
        for i, j, diag in _blocks(len(x), None if symmetric else len(y), tile_size):
            values = _masked(phi(squared_distances(x[i], other[j]), False), diag, exclude_diagonal)
            total += values.sum() * (2.0 if symmetric and not diag else 1.0)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        symmetric = y.numel() == 0
        other = x if symmetric else y
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_y = None
        if not symmetric and ctx.needs_input_grad[1]:
            grad_y = torch.zeros_like(y)
        if grad_x is None and grad_y is None:
            return None, None, None, None, None
        # d/dx_i phi(|x_i - y_j|^2) = 2 phi'_ij (x_i - y_j): row sums and one product per tile
        for i, j, diag in _blocks(len(x), None if symmetric else len(y), ctx.tile_size):
            w = _masked(ctx.phi(squared_distances(x[i], other[j]), True), diag, ctx.exclude)
            if symmetric:  # x on both sides: 2 (chain rule) x 2; an off-diagonal tile is
                # the pairs (i, j) and (j, i), so it feeds rows i and rows j
                grad_x[i] += 4.0 * (x[i] * w.sum(1, keepdim=True) - w @ x[j])
                if not diag:
                    grad_x[j] += 4.0 * (x[j] * w.sum(0)[:, None] - w.T @ x[i])
                continue
            if grad_x is not None:
                grad_x[i] += 2.0 * (x[i] * w.sum(1, keepdim=True) - w @ y[j])
            if grad_y is not None:
                grad_y[j] += 2.0 * (y[j] * w.sum(0)[:, None] - w.T @ x[i])
        grad = grad.to(x.dtype)
        return (
            None if grad_x is None else grad * grad_x,
            None if grad_y is None else grad * grad_y,
            None, None, None,
        )


def pair_sum(
    x: Tensor,
    y: Tensor | None,
    phi: PairFunction,
    *,
    tile_size: int = DEFAULT_TILE,
    exclude_diagonal: bool = False,
) -> Tensor:
    r""":math:`\sum_{i, j} \varphi(\|x_i - y_j\|^2)` in :math:`O((n + m) d)` memory.

    Parameters
    ----------
    x, y:
        Samples ``(n, d)`` and ``(m, d)``; ``y=None`` sums over the pairs of ``x`` with itself
        (:math:`\sum_{i, j \le n}`, computing each off-diagonal tile once and counting it twice).
    phi:
        ``phi(d2, derivative)``, elementwise on a tile of squared distances: :math:`\varphi(d^2)`
        when ``derivative`` is false, :math:`\partial \varphi / \partial (d^2)` when true. It may
        work in place on ``d2`` (a fresh tile). The gradient is
        :math:`\partial / \partial x_i = \sum_j 2\,\varphi'(\|x_i - y_j\|^2)(x_i - y_j)`,
        computed in the backward pass from recomputed tiles.
    tile_size:
        Rows and columns per tile.
    exclude_diagonal:
        With ``y=None``, leave out the terms :math:`i = j` (U-statistics).

    Returns
    -------
    Tensor
        A scalar, differentiable in ``x`` and ``y`` (once: no second derivatives).

    Examples
    --------
    >>> x = torch.randn(5, 3)
    >>> gauss = lambda d2, derivative: -(-d2).exp() if derivative else (-d2).exp()
    >>> dense = torch.exp(-squared_distances(x, x)).sum()
    >>> bool(torch.allclose(pair_sum(x, None, gauss, tile_size=2), dense))
    True
    """
    if y is None:
        y = x.new_empty(0)  # autograd.Function inputs must be tensors: empty means "x itself"
    elif y.numel() == 0:
        return x.new_zeros(())
    return _PairSum.apply(x, y, phi, tile_size, exclude_diagonal)


def _cost(x: Tensor, y: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """GeomLoss's p = 1 cost sqrt(max(|x - y|^2, 1e-8)) on a tile, and its derivative in |x-y|^2."""
    sq = squared_distances(x, y)
    cost = sq.clamp_min(1e-8).sqrt()  # GeomLoss's floor: a zero gradient where points coincide
    return cost, torch.where(sq > 1e-8, 0.5 / cost, torch.zeros_like(cost))


def _column_term(y: Tensor, h: Tensor, eps: float, p: int) -> Tensor:
    """h_j less |y_j|^2 / (2 eps) for p = 2 (see :func:`_exponent`), else h."""
    return h - (y * y).sum(1) / (2 * eps) if p == 2 else h


def _exponent(x: Tensor, y: Tensor, hy: Tensor, eps: float, p: int) -> Tensor:
    """The tile h_j - C_ij / eps, less |x_i|^2 / (2 eps) when p = 2 (a row constant).

    For p = 2, h_j - |x_i - y_j|^2 / (2 eps) is hy_j + x_i.y_j / eps less the row's
    |x_i|^2 / (2 eps), with hy = :func:`_column_term`: one fused matrix product per tile, the row
    term added afterwards. For p = 1, ``hy`` is h.
    """
    if p == 2:
        return torch.addmm(hy, x, y.T, alpha=1.0 / eps)
    return hy - _cost(x, y, p)[0] / eps


def _row_term(x: Tensor, eps: float, p: int) -> Tensor:
    """What :func:`_exponent` left out of each row: |x_i|^2 / (2 eps) for p = 2, else 0."""
    return (x * x).sum(1) / (2 * eps) if p == 2 else x.new_zeros(len(x))


def _logsumexp_rows(t: Tensor) -> Tensor:
    """log sum_j exp(t_ij), in place on ``t`` (one buffer, where torch.logsumexp makes three)."""
    top = t.amax(1).clamp_min(torch.finfo(t.dtype).min)  # finite even for empty rows
    return top + t.sub_(top[:, None]).exp_().sum(1).log_()


class _Softmin(torch.autograd.Function):
    """f_i = -eps log sum_j exp(h_j - C_ij / eps) by streaming log-sum-exp; gradient in x."""

    @staticmethod
    def forward(ctx, x, y, h, eps, p, tile_size):
        hy = _column_term(y, h, eps, p)
        columns = tiles(len(y), tile_size)
        lse = torch.empty(len(x), dtype=x.dtype, device=x.device)
        for i in tiles(len(x), tile_size):
            parts = [_logsumexp_rows(_exponent(x[i], y[j], hy[j], eps, p)) for j in columns]
            lse[i] = parts[0] if len(parts) == 1 else torch.logsumexp(torch.stack(parts), dim=0)
        f = (lse - _row_term(x, eps, p)).mul_(-eps)
        ctx.save_for_backward(x, y, h, f)
        ctx.eps, ctx.p, ctx.tile_size = eps, p, tile_size
        return f

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_f):
        x, y, h, f = ctx.saved_tensors
        eps, p = ctx.eps, ctx.p
        hy = _column_term(y, h, eps, p)
        shifts = (f / eps - _row_term(x, eps, p))[:, None]
        grad_x = torch.zeros_like(x)
        # df_i / dC_ij = P_ij = exp(h_j - C_ij / eps + f_i / eps), the row-stochastic plan
        for i in tiles(len(x), ctx.tile_size):
            for j in tiles(len(y), ctx.tile_size):
                w = _exponent(x[i], y[j], hy[j], eps, p).add_(shifts[i]).exp_()
                w.mul_(grad_f[i, None])
                if p == 1:
                    w.mul_(_cost(x[i], y[j], p)[1]).mul_(2.0)  # dC/dx = 2 C'(d^2) (x - y)
                grad_x[i] += x[i] * w.sum(1, keepdim=True) - w @ y[j]
        return grad_x, None, None, None, None, None


def softmin(
    x: Tensor, y: Tensor, h: Tensor, eps: float, *, p: int = 2, tile_size: int = DEFAULT_TILE
) -> Tensor:
    r"""The soft :math:`c`-transform of the Sinkhorn algorithm, in :math:`O((n + m) d)` memory.

    .. math::

        f_i = -\varepsilon \log \sum_{j=1}^m \exp\big(h_j - C(x_i, y_j) / \varepsilon\big),
        \qquad C(x, y) = \tfrac1p \|x - y\|^p,

    (Feydy et al., 2019, Eq. 3.186 of Feydy's thesis; GeomLoss's ``softmin``), with the cost of
    GeomLoss for ``p = 1`` (the distance floored at :math:`10^{-4}`, so a zero gradient where two
    points coincide).

    Parameters
    ----------
    x, y:
        Samples ``(n, d)`` and ``(m, d)``.
    h:
        Log-weights plus scaled potentials, ``(m,)``: :math:`\log b_j + g_j / \varepsilon`.
    eps:
        The temperature :math:`\varepsilon > 0`.
    p:
        1 or 2.
    tile_size:
        Rows and columns per tile.

    Returns
    -------
    Tensor
        ``f``, shape ``(n,)``. Differentiable in ``x`` only, at fixed ``y`` and ``h`` (the
        envelope-theorem gradient of GeomLoss's last extrapolation:
        :math:`\partial f_i / \partial x_i = \sum_j P_{ij} \nabla_x C(x_i, y_j)`, :math:`P` the
        row-normalised plan); no gradient flows to ``y`` or ``h``.
    """
    return _Softmin.apply(x, y.detach(), h.detach(), float(eps), p, tile_size)


@contextlib.contextmanager
def oom_guard(divergence: str, n: int, m: int, backend: str, advice: str) -> Iterator[None]:
    """Re-raise an out-of-memory error inside the block as a :class:`HierotError`.

    The message names the divergence, the sample counts ``n`` and ``m``, the backend that ran
    out and ``advice`` (the backend to switch to), instead of a bare allocator traceback.
    """
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        text = str(exc)
        if not isinstance(exc, torch.OutOfMemoryError) and "allocate" not in text:
            raise
        raise HierotError(
            f"{divergence} ran out of memory on {n} samples against {m} prior samples with "
            f"backend {backend!r}: {advice} ({text.splitlines()[0][:200]})"
        ) from exc
