r"""The lambda weights of the WAE objectives: Eq. (10)'s products :math:`\prod_{i \le n} \lambda_i`.

Each schedule resolves, for the latent dimensions :math:`d_{z_1}, \dots, d_{z_N}`, to the weight of
every reconstruction term :math:`c_n` (n = 0..N-1, n = 0 the data term) and the weight of the top
divergence. They are options of the ``stacked-wae`` and ``wae`` objectives (``objective.weights``;
the top-level ``weights:`` of older specs is moved there when a spec is loaded).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field

from hierot.components import StrictModel as _Schedule


class ExplicitWeights(_Schedule):
    """Weights of Eq. (10) given directly: ``reconstruction[n]`` multiplies the cost c_n."""

    schedule: Literal["explicit"]
    reconstruction: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        description="one weight per reconstruction term n = 0..N-1 (n = 0 is the data term)"
    )
    match: float = Field(gt=0, description="weight of the top divergence D_N")

    def resolve(self, latent_dims: list[int]) -> tuple[list[float], float]:
        return list(self.reconstruction), self.match

    def errors(self, latent_dims: list[int]) -> list[str]:
        n = len(latent_dims)
        if len(self.reconstruction) != n:
            return [f"reconstruction: {len(self.reconstruction)} values for {n} reconstruction "
                    f"terms (one per latent layer)"]
        return []


class PaperMnistWeights(_Schedule):
    """Appendix B.1: prod_{i<=n} lambda_i = lambda_rec^n / d_{z_n}, and lambda_match on top."""

    schedule: Literal["paper-mnist"]
    lambda_rec: float = Field(0.05, gt=0)
    lambda_match: float = Field(1e-4, gt=0)

    def resolve(self, latent_dims: list[int]) -> tuple[list[float], float]:
        rec = [1.0] + [self.lambda_rec**n / latent_dims[n - 1] for n in range(1, len(latent_dims))]
        return rec, self.lambda_match

    def errors(self, latent_dims: list[int]) -> list[str]:
        return []


class PaperSvhnWeights(_Schedule):
    """Appendix B.2: prod_{i<=p} lambda_i = lambda_rec^((p-1)/2 + 1), and lambda_match on top."""

    schedule: Literal["paper-svhn"]
    lambda_rec: float = Field(0.1, gt=0)
    lambda_match: float = Field(1e-4, gt=0)

    def resolve(self, latent_dims: list[int]) -> tuple[list[float], float]:
        rec = [1.0] + [self.lambda_rec ** ((p - 1) / 2 + 1) for p in range(1, len(latent_dims))]
        return rec, self.lambda_match

    def errors(self, latent_dims: list[int]) -> list[str]:
        return []


FLOAT32_MAX = 3.4028234663852886e38
"""Largest float32: a weight above it is infinite once it multiplies a float32 term."""


def overflow_errors(schedule, latent_dims: list[int]) -> list[str]:
    """A schedule whose finite options resolve to weights that overflow float32 (``lambda^n``)."""
    try:
        reconstruction, match = schedule.resolve(latent_dims)
    except OverflowError:
        reconstruction, match = [math.inf], math.inf
    values = [*reconstruction, match]
    if all(math.isfinite(w) and abs(w) <= FLOAT32_MAX for w in values):
        return []
    return [f"the {schedule.schedule} schedule resolves to non-finite weights "
            f"({', '.join(f'{w:.4g}' for w in reconstruction)} | {match:.4g})"]


Weights = Annotated[
    Union[ExplicitWeights, PaperMnistWeights, PaperSvhnWeights],  # noqa: UP007
    Discriminator("schedule"),
]
"""Any of the schedules, chosen by ``schedule``."""

__all__ = ["ExplicitWeights", "PaperMnistWeights", "PaperSvhnWeights", "Weights"]
