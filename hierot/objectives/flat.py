r"""The flat WAE with an implicit prior, Eq. (7): the paper's ablation (Section 3.1).

.. math::

    \lambda_1 \mathcal D_1\big(Q_1^\text{agg}(Z_1), P_{\Theta_{2:N}}(Z_1)\big)
    + \mathbb E_{x \sim P_D}\, \mathbb E_{z_1 \sim q(z_1|x)}\,
      \mathbb E_{\tilde x \sim p(\tilde x|z_1)}\,
      c(x, \tilde x)

The prior on z_1 is the generative hierarchy itself (Eq. 6): z_N ~ N(0, I) pushed down through
p(z_{N-1}|z_N) ... p(z_1|z_2) by ancestral, reparameterised sampling, so the divergence trains the
upper decoders. The encoders above q(z_1|x) receive no gradient: Eq. (7) does not depend on them.
lambda_1 is the match weight of ``weights`` (``lambda_match`` of the paper's schedules).
"""

from __future__ import annotations

import math
from functools import partial

from torch import Tensor

from hierot.costs import expected_cost
from hierot.objectives.base import Objective, ObjectiveContext
from hierot.objectives.stacked import WAEOptions
from hierot.objectives.terms import Terms
from hierot.registry import objectives


class FlatWAEOptions(WAEOptions):
    label = "flat WAE with the implicit prior, Eq. (7)"


@objectives.register("wae", options=FlatWAEOptions)
class FlatWAE(Objective):
    """Flat WAE, Eq. (7): reconstruction through z_1 and a divergence to the implicit prior."""

    def __init__(self, options: WAEOptions, *, context: ObjectiveContext):
        super().__init__(options, context=context)
        dims = [math.prod(shape) for shape in context.model.latent_shapes]
        self.reconstruction_weights, self.match_weight = options.weights.resolve(dims)

    def forward(self, x: Tensor) -> Terms:
        model = self.model
        encodings, codes = model.encode(x, depth=1)
        terms = Terms()
        terms.outputs.encodings = encodings
        decoded = model.decoders[0](codes[0])
        terms.outputs.decodings.append(decoded)
        terms.add("rec_x", expected_cost(self.costs[0], x, decoded).mean(),
                  self.reconstruction_weights[0])
        implicit_prior = partial(model.ancestral_sample, down_to=1)
        terms.add("match_z1", self.match(codes[0], implicit_prior), self.match_weight)
        self.add_penalties(terms)
        return terms
