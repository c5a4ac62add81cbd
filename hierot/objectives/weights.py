r"""The lambda weights of the WAE objectives: Eq. (10)'s products :math:`\prod_{i \le n} \lambda_i`.

Each lambda schedule resolves, for the latent dimensions :math:`d_{z_1}, \dots, d_{z_N}`, to the
weight of every reconstruction term :math:`c_n` (n = 0..N-1, n = 0 the data term) and the weight of
the top divergence. They are the ``objective.weights`` of the ``stacked-wae`` and ``wae``
objectives, chosen by ``schedule``.

Schedules are the ``lambda_schedules`` registry (entry-point group ``hierot.lambda_schedules``):
a function ``(options, latent_dims) -> (reconstruction weights, match weight)`` registered with
its options model, a subclass of :class:`LambdaScheduleOptions`, whose ``resolve`` and
``errors`` the spec calls before anything is built::

    class GeometricOptions(LambdaScheduleOptions):
        ratio: float = Field(0.5, gt=0)

    @lambda_schedules.register("geometric", options=GeometricOptions)
    def geometric(options, latent_dims):
        return [options.ratio**n for n in range(len(latent_dims))], 1.0
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from hierot.components import ComponentOptions
from hierot.registry import choice, lambda_schedules


class LambdaScheduleOptions(ComponentOptions):
    """Base of every lambda schedule's options: ``resolve`` calls the registered function."""

    def resolve(self, latent_dims: list[int]) -> tuple[list[float], float]:
        """(weight of each reconstruction term c_0..c_{N-1}, weight of the top divergence)."""
        return lambda_schedules.build(self, latent_dims=latent_dims)

    def errors(self, latent_dims: list[int]) -> list[str]:
        """``field: message`` lines for options that do not fit these layers (none by default)."""
        return []


class ExplicitWeights(LambdaScheduleOptions):
    """Weights of Eq. (10) given directly: ``reconstruction[n]`` multiplies the cost c_n."""

    reconstruction: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        description="one weight per reconstruction term n = 0..N-1 (n = 0 is the data term)"
    )
    match: float = Field(gt=0, description="weight of the top divergence D_N")

    def errors(self, latent_dims: list[int]) -> list[str]:
        n = len(latent_dims)
        if len(self.reconstruction) != n:
            return [(f"reconstruction: {len(self.reconstruction)} values for {n} reconstruction "
                    f"terms (one per latent layer)")]
        return []


@lambda_schedules.register("explicit", options=ExplicitWeights)
def explicit(options: ExplicitWeights, latent_dims: list[int]) -> tuple[list[float], float]:
    """Weights of Eq. (10) given directly, one per reconstruction term, and the match weight."""
    return list(options.reconstruction), options.match


class PaperMnistWeights(LambdaScheduleOptions):
    """Options of Appendix B.1's schedule."""

    lambda_rec: float = Field(0.05, gt=0)
    lambda_match: float = Field(1e-4, gt=0)


@lambda_schedules.register("paper-mnist", options=PaperMnistWeights)
def paper_mnist(options: PaperMnistWeights, latent_dims: list[int]) -> tuple[list[float], float]:
    """Appendix B.1: prod_{i<=n} lambda_i = lambda_rec^n / d_{z_n}, and lambda_match on top."""
    rec = [1.0] + [options.lambda_rec**n / latent_dims[n - 1] for n in range(1, len(latent_dims))]
    return rec, options.lambda_match


class PaperSvhnWeights(LambdaScheduleOptions):
    """Options of Appendix B.2's schedule."""

    lambda_rec: float = Field(0.1, gt=0)
    lambda_match: float = Field(1e-4, gt=0)


@lambda_schedules.register("paper-svhn", options=PaperSvhnWeights)
def paper_svhn(options: PaperSvhnWeights, latent_dims: list[int]) -> tuple[list[float], float]:
    """Appendix B.2: prod_{i<=p} lambda_i = lambda_rec^((p-1)/2 + 1), and lambda_match on top."""
    rec = [1.0] + [options.lambda_rec ** ((p - 1) / 2 + 1) for p in range(1, len(latent_dims))]
    return rec, options.lambda_match


FLOAT32_MAX = 3.4028234663852886e38
"""Largest float32: a weight above it is infinite once it multiplies a float32 term."""


def overflow_errors(schedule: LambdaScheduleOptions, latent_dims: list[int]) -> list[str]:
    """A schedule whose finite options resolve to weights that overflow float32 (``lambda^n``)."""
    try:
        reconstruction, match = schedule.resolve(latent_dims)
    except OverflowError:
        reconstruction, match = [math.inf], math.inf
    values = [*reconstruction, match]
    if all(math.isfinite(w) and abs(w) <= FLOAT32_MAX for w in values):
        return []
    return [(f"the {schedule.schedule} schedule resolves to non-finite weights "  # type: ignore
            f"({', '.join(f'{w:.4g}' for w in reconstruction)} | {match:.4g})")]


Weights = choice(lambda_schedules)
"""The type of an options field holding a lambda schedule (``objective.weights``), chosen by
``schedule`` among the ``lambda_schedules`` registry (plug-ins included) when the spec is built."""

__all__ = [
    "ExplicitWeights", "LambdaScheduleOptions", "PaperMnistWeights", "PaperSvhnWeights",
    "Weights", "explicit", "paper_mnist", "paper_svhn",
]
