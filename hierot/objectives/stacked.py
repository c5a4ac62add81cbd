r"""The StackedWAE objective, Eq. (10) of Gaujac et al., *Learning deep-latent hierarchies by
stacking Wasserstein autoencoders*.

.. math::

    \Big[\prod_{i=1}^N \lambda_i\Big] \mathcal D_N\big(Q_N^\text{agg}(Z_N), P(Z_N)\big)
    + \sum_{n=0}^{N-1} \Big[\prod_{i=1}^n \lambda_i\Big]
      \mathbb E_{z_n \sim Q_n^\text{agg}}\, \mathbb E_{z_{n+1} \sim q(z_{n+1}|z_n)}\,
      \mathbb E_{\tilde z_n \sim p(\tilde z_n | z_{n+1})}\, c_n(z_n, \tilde z_n)

with z_0 = x. Samples of Q_n^agg (Eq. 11) are obtained by pushing the batch up the encoder chain
with reparameterised samples; the inner expectation over the decoder is analytic where the cost
allows (squared Euclidean under a Gaussian: ||z_n - mu||^2 + tr Sigma) and a one-sample Monte
Carlo estimate otherwise. Penalties (Eq. 12) are added with their own weights. The products of
lambdas come from ``weights`` (:mod:`hierot.objectives.weights`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field
from torch import Tensor

from hierot.costs import expected_cost
from hierot.objectives.base import Objective, ObjectiveContext, ObjectiveOptions
from hierot.objectives.terms import Terms
from hierot.objectives.weights import Weights, overflow_errors
from hierot.registry import objectives


class WAEOptions(ObjectiveOptions):
    """Options of the WAE objectives: the lambda weights."""

    weights: Weights = Field(
        default_factory=lambda: {"schedule": "paper-mnist"}, validate_default=True,
        description="the lambda products of Eq. (10) (see docs/objective.md#the-weights)",
    )

    def layer_weights(self, latent_dims: list[int]) -> list[float]:
        return self.weights.resolve(latent_dims)[0]

    def match_weight(self) -> float:
        return self.weights.resolve([1])[1]

    def spec_errors(self, layers: Sequence) -> list[str]:
        dims = [layer.dim for layer in layers]
        errors = [f"objective.weights.{e}" for e in self.weights.errors(dims)]
        return errors + [f"objective.weights: {e}" for e in overflow_errors(self.weights, dims)]


class StackedWAEOptions(WAEOptions):
    label = "StackedWAE, Eq. (10)"


@objectives.register("stacked-wae", options=StackedWAEOptions)
class StackedWAE(Objective):
    """StackedWAE, Eq. (10): a reconstruction term at every layer and a divergence on the top."""

    def __init__(self, options: WAEOptions, *, context: ObjectiveContext):
        super().__init__(options, context=context)
        dims = [math.prod(shape) for shape in context.model.latent_shapes]
        self.reconstruction_weights, self.match_weight = options.weights.resolve(dims)

    def forward(self, x: Tensor) -> Terms:
        model = self.model
        encodings, codes = model.encode(x)
        terms = Terms()
        terms.outputs.encodings = encodings
        targets = [x, *codes[:-1]]  # z_n for n = 0..N-1
        for n, (target, decoder) in enumerate(zip(targets, model.decoders)):
            decoded = decoder(codes[n])  # p(z_n | z_{n+1}) at the encoded z_{n+1}
            terms.outputs.decodings.append(decoded)
            cost = expected_cost(self.costs[n], target, decoded).mean()
            terms.add("rec_x" if n == 0 else f"rec_z{n}", cost, self.reconstruction_weights[n])
        matched = self.match(codes[-1], model.prior_sample)
        terms.add(f"match_z{model.depth}", matched, self.match_weight)
        self.add_penalties(terms)
        return terms
