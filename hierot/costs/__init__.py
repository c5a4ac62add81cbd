"""Built-in costs c_n(z_n, z~_n) of the stacked objective (Eq. 10); importing registers them.

Each cost sums over the event dimensions and returns one value per sample. ``expected_cost`` is
the term E_{z~ ~ p(.|z_{n+1})} c_n(z_n, z~) of Eq. (10): exact when the cost has a closed form under
a Gaussian decoder (the squared Euclidean cost: ||z - mu||^2 + tr Sigma), the cost at the output
for a deterministic decoder, and a one-sample reparameterised Monte Carlo estimate otherwise.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from hierot.components import Cost
from hierot.distributions import Gaussian
from hierot.precision import float32_region, to_float32
from hierot.registry import NoOptions, costs


def _sum_event(values: Tensor) -> Tensor:
    return values.flatten(1).sum(1)


class _Cost:
    """A cost without options; ``closed_form`` says whether ``expected`` is defined."""

    closed_form = False

    def __init__(self, options: NoOptions | None = None):
        pass


@costs.register("l2sq")
class SquaredEuclidean(_Cost):
    r"""Squared Euclidean cost :math:`c(z, \tilde z) = \|z - \tilde z\|_2^2` (the paper's choice).

    Under :math:`\tilde z \sim \mathcal N(\mu, \Sigma)` its expectation is
    :math:`\|z - \mu\|_2^2 + \operatorname{tr}\Sigma`.
    """

    closed_form = True

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        return _sum_event((target - reconstruction).square())

    def expected(self, target: Tensor, decoded: Gaussian) -> Tensor:
        var = decoded.var  # exp(log_var), computed once
        return self(target, decoded.mean) + (_sum_event(var) if var is not None else 0.0)


@costs.register("l2")
class Euclidean(_Cost):
    r"""Euclidean cost :math:`\|z - \tilde z\|_2` (no closed form: Monte Carlo under a Gaussian)."""

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        # the epsilon keeps the gradient finite at a perfect reconstruction
        return (_sum_event((target - reconstruction).square()) + 1e-12).sqrt()


@costs.register("l1")
class Manhattan(_Cost):
    r"""L1 cost :math:`\|z - \tilde z\|_1` (Monte Carlo under a Gaussian decoder)."""

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        return _sum_event((target - reconstruction).abs())


@costs.register("bce")
class BinaryCrossEntropy(_Cost):
    r"""Binary cross-entropy for data in [0, 1]:
    :math:`-\sum x\log\tilde x + (1-x)\log(1-\tilde x)`.

    The reconstruction must lie in (0, 1): pair it with a decoder whose output is squashed
    (``output: sigmoid`` for ``mlp``). Values are clamped away from 0 and 1.
    """

    def __call__(self, target: Tensor, reconstruction: Tensor) -> Tensor:
        eps = 1e-6
        return _sum_event(F.binary_cross_entropy(reconstruction.clamp(eps, 1 - eps), target,
                                                 reduction="none"))


def expected_cost(cost: Cost, target: Tensor, decoded: Gaussian) -> Tensor:
    """E c(target, z~) under z~ ~ ``decoded``, per sample (analytic where the cost allows).

    Always computed in float32 (or float64): under mixed precision (``train.precision``) the
    inputs are cast up and autocast is off inside, see :mod:`hierot.precision`.
    """
    log_var = None if decoded.log_var is None else to_float32(decoded.log_var)
    decoded, target = Gaussian(to_float32(decoded.mean), log_var), to_float32(target)
    with float32_region(target.device.type):
        return _expected_cost(cost, target, decoded)


def _expected_cost(cost: Cost, target: Tensor, decoded: Gaussian) -> Tensor:
    if decoded.deterministic:
        return cost(target, decoded.mean)
    if cost.closed_form:
        return cost.expected(target, decoded)  # type: ignore[attr-defined]
    return cost(target, decoded.rsample())


__all__ = ["BinaryCrossEntropy", "Euclidean", "Manhattan", "SquaredEuclidean", "expected_cost"]
