r"""The Ladder VAE of Sønderby et al. (2016), *Ladder Variational Autoencoders*, on the hierarchy.

Inference shares the generative model's top-down path. A deterministic bottom-up pass
(their Eq. 12) computes, from :math:`d_0 = x`,

.. math:: d_i = \hat\mu_i, \qquad (\hat\mu_i, \hat\sigma_i^2) = \text{encoder}_i(d_{i-1}),

and a top-down pass draws :math:`z_N \sim q(z_N \mid x) = \mathcal N(\hat\mu_N, \hat\sigma_N^2)`,
then for i = N-1, ..., 1 merges the bottom-up Gaussian with the generative
:math:`p(z_i \mid z_{i+1}) = \mathcal N(\mu_{p,i}, \sigma_{p,i}^2)` by precision weighting
(their Eq. 17-19):

.. math::

    \sigma_{q,i}^2 = \frac{1}{\hat\sigma_i^{-2} + \sigma_{p,i}^{-2}}, \qquad
    \mu_{q,i} = \frac{\hat\mu_i \hat\sigma_i^{-2} + \mu_{p,i} \sigma_{p,i}^{-2}}
                     {\hat\sigma_i^{-2} + \sigma_{p,i}^{-2}}, \qquad
    z_i \sim \mathcal N(\mu_{q,i}, \sigma_{q,i}^2).

The objective is the ELBO, as for ``hvae`` (:mod:`hierot.objectives.vae`): the same pixel
likelihood, KL warm-up (which Sønderby et al. introduce) and optional free bits. Because
:math:`q(z_i \mid z_{i+1}, x)` and :math:`p(z_i \mid z_{i+1})` are both Gaussian given the drawn
:math:`z_{i+1}`, every KL term is analytic.

**The networks.** The layer networks are those of every other objective, so comparisons are
fair: encoder i (its Gaussian head) is the bottom-up MLP giving :math:`(\hat\mu_i,
\hat\sigma_i^2)`, fed the *mean* of the layer below (deterministic, as in the paper), and decoder
i + 1 is the top-down generative path :math:`p(z_i \mid z_{i+1})`, shared by inference and
generation. Sønderby et al. additionally use batch normalisation (the MLPs here have it) and
deterministic warm-up; their separate small MLPs between d_i and the Gaussian parameters are the
encoders' heads here.
"""

from __future__ import annotations

from torch import Tensor

from hierot.distributions import Gaussian
from hierot.objectives.base import Inference, standard_normal
from hierot.objectives.vae import VAE, VAEOptions
from hierot.registry import objectives


class LVAEOptions(VAEOptions):
    label = "Ladder VAE, Sønderby et al. (2016) (negative ELBO)"


def precision_weighted(bottom_up: Gaussian, top_down: Gaussian) -> Gaussian:
    r"""The product of two diagonal Gaussians, normalised: the ladder's merge (Eq. 17-19).

    Computed in log space: :math:`\log\sigma_q^2 = -\operatorname{logaddexp}(-\log\hat\sigma^2,
    -\log\sigma_p^2)` and :math:`\mu_q = \sigma_q^2(\hat\mu/\hat\sigma^2 + \mu_p/\sigma_p^2)`.
    """
    up, down = bottom_up.stochastic_log_var, top_down.stochastic_log_var
    log_var = -(-up).logaddexp(-down)
    mean = (bottom_up.mean * (log_var - up).exp() + top_down.mean * (log_var - down).exp())
    return Gaussian(mean, log_var)


@objectives.register("lvae", options=LVAEOptions)
class LVAE(VAE):
    """Ladder VAE (Sønderby et al., 2016): precision-weighted top-down inference, ELBO."""

    def bottom_up(self, x: Tensor) -> list[Gaussian]:
        """The deterministic upward pass: ``(mu_hat_i, var_hat_i)``, each encoder fed the mean
        below."""
        out, d = [], x
        for encoder in self.model.encoders:
            g = encoder(d)
            out.append(g)
            d = g.mean
        return out

    def _top_down(self, x: Tensor, sample: bool) -> Inference:
        decoders = self.model.decoders
        up = self.bottom_up(x)
        n = self.depth
        posteriors: list[Gaussian] = [None] * n  # type: ignore[list-item]
        priors: list[Gaussian] = [None] * n  # type: ignore[list-item]
        codes: list[Tensor] = [None] * n  # type: ignore[list-item]
        posteriors[-1] = up[-1]
        codes[-1] = up[-1].sample_or_mean(sample)
        priors[-1] = standard_normal(codes[-1])
        for i in range(n - 2, -1, -1):  # z_{i+1} from z_{i+2}
            priors[i] = decoders[i + 1](codes[i + 1])
            posteriors[i] = precision_weighted(up[i], priors[i])
            codes[i] = posteriors[i].sample_or_mean(sample)
        return Inference(posteriors, codes, priors, decoders[0](codes[0]), top_down=True)

    def infer(self, x: Tensor) -> Inference:
        return self._top_down(x, sample=True)

    def encode(
        self, x: Tensor, depth: int | None = None, sample: bool = True
    ) -> tuple[list[Gaussian], list[Tensor]]:
        """The ladder posterior of z_1..z_depth (top-down through means when not ``sample``)."""
        inference = self._top_down(x, sample)
        depth = self.depth if depth is None else depth
        return inference.posteriors[:depth], inference.codes[:depth]


__all__ = ["LVAE", "LVAEOptions", "precision_weighted"]
