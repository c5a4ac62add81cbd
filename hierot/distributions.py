"""The distributions that layer networks output.

Every encoder q(z_i | z_{i-1}) and decoder p(z_{i-1} | z_i) of the hierarchy (the paper's Eq. 21)
returns a :class:`Gaussian` with a diagonal covariance, or a deterministic output (a Dirac delta,
``log_var is None``) such as the paper's bottom decoder p(x | z_1) = delta(x - f(z_1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Gaussian:
    """N(mean, diag(exp(log_var))) over tensors of shape ``(batch, *event_shape)``.

    ``log_var=None`` is the deterministic case: a point mass at ``mean``.
    """

    mean: Tensor
    log_var: Tensor | None = None

    @property
    def deterministic(self) -> bool:
        return self.log_var is None

    @property
    def var(self) -> Tensor | None:
        return None if self.log_var is None else self.log_var.exp()

    @property
    def stochastic_log_var(self) -> Tensor:
        """``log_var`` where a density or a KL needs one: a point mass (``None``) is an error."""
        if self.log_var is None:
            raise ValueError("a deterministic (point-mass) Gaussian has no density; "
                             "this needs a Gaussian head")
        return self.log_var

    def rsample(self) -> Tensor:
        """A reparameterised sample mean + sigma * eps (the mean itself when deterministic)."""
        if self.log_var is None:
            return self.mean
        return self.mean + torch.randn_like(self.mean) * (0.5 * self.log_var).exp()

    def sample_or_mean(self, sample: bool) -> Tensor:
        return self.rsample() if sample else self.mean

__all__ = ["Gaussian"]
