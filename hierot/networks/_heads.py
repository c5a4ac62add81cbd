"""The output heads shared by every layer network.

A head turns features into the distribution of Eq. (21): a Gaussian with mean mu(.) and diagonal
covariance Sigma(.) = exp(log_var(.)), or a deterministic output f(.) (the paper's p(x | z_1)).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from hierot.components import Head, Shape
from hierot.distributions import Gaussian


def numel(shape: Shape) -> int:
    return math.prod(shape)


class GaussianHead(nn.Module):
    """Linear map from ``in_features`` to the mean (and log-variance) over ``out_shape``."""

    def __init__(self, in_features: int, out_shape: Shape, head: Head):
        super().__init__()
        self.out_shape = tuple(out_shape)
        width = numel(self.out_shape)
        self.mean = nn.Linear(in_features, width)
        self.log_var = nn.Linear(in_features, width) if head == "gaussian" else None

    def forward(self, features: Tensor) -> Gaussian:
        shape = (features.shape[0], *self.out_shape)
        mean = self.mean(features).view(shape)
        if self.log_var is None:
            return Gaussian(mean)
        return Gaussian(mean, self.log_var(features).view(shape))
