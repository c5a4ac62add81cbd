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
Carlo estimate otherwise. Penalties (Eq. 12) are added with their own weights.
"""

from __future__ import annotations

from torch import Tensor

from hierot.costs import expected_cost
from hierot.objectives.terms import Objective, Terms


class StackedWAE(Objective):
    """Eq. (10): a reconstruction term at every layer and the divergence on the top latent."""

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
        self._match(terms, f"match_z{model.depth}", codes[-1], model.prior_sample)
        self._add_penalties(terms)
        return terms
