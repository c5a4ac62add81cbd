r"""The Markov hierarchical VAE (``hvae``) on the same hierarchy as StackedWAE.

The generative model is Eq. (1) of the paper, the inference model its Markov encoder, Eq. (2);
the objective is the evidence lower bound (Kingma & Welling, 2014; Burda et al., 2016, Sec. 2)

.. math::

    \log p(x) \ge \mathbb E_{q(z_{1:N} \mid x)}\Big[\log p(x \mid z_1)
        - \sum_{i=1}^{N-1} \log\frac{q(z_i \mid z_{i-1})}{p(z_i \mid z_{i+1})}
        - \log\frac{q(z_N \mid z_{N-1})}{\mathcal N(z_N; 0, I)}\Big],

minimised as its negative, ``rec_x`` :math:`= -\log p(x \mid z_1)` plus one ``kl_z{i}`` term per
layer. With a Markov encoder, z_{i+1} is drawn from q(z_{i+1} | z_i) *after* z_i, so the term of
layer i < N is not a KL between two Gaussians at a fixed condition: it is estimated by the
one-sample difference :math:`\log q(z_i \mid z_{i-1}) - \log p(z_i \mid z_{i+1})` at the drawn
codes (unbiased). The top term, against N(0, I), is analytic.

**Pixel likelihood.** A Bernoulli :math:`p(x \mid z_1) = \prod_m \mu_m^{x_m}(1-\mu_m)^{1-x_m}`
with :math:`\mu` the mean of the bottom decoder, which must lie in [0, 1] (``output: sigmoid``, as
in the MNIST presets; it is clamped to [1e-6, 1 - 1e-6]). It is the likelihood of the deep-VAE
literature on MNIST that this comparison is about (Burda et al. 2016, Sønderby et al. 2016,
Maaløe et al. 2019), and the cross-entropy of Eq. (10)'s data term with the ``bce`` cost. On grey
levels it is not normalised; ``likelihood: continuous-bernoulli`` adds the normaliser
:math:`\log C(\mu)` of Loaiza-Ganem & Cunningham (2019), a proper density on :math:`[0, 1]^D`.
The bottom decoder's head may be deterministic (only its mean is used); every other conditional
must be Gaussian, which validation checks.

**KL warm-up** (Sønderby et al. 2016): the KL terms are multiplied by
:math:`\beta = \min(1, t / T)` at training step t (``warmup_steps`` T; 0: no warm-up).
**Free bits** (Kingma et al. 2016, Eq. 15): with ``free_bits`` :math:`\lambda > 0` the KL of layer
i is replaced by :math:`\sum_{j} \max(\lambda, \mathbb E_\text{batch} \mathrm{KL}_{ij})` over its
dimensions j, so that no dimension is pushed below :math:`\lambda` nats. The unweighted ``kl_z{i}``
is always the plain batch-mean KL (the ELBO's); the weighted one is what is minimised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.distributions import Gaussian
from hierot.objectives.base import Inference, Objective, ObjectiveOptions
from hierot.objectives.terms import Terms
from hierot.precision import float32_region, to_float32
from hierot.registry import objectives

PROBABILITY_EPS = 1e-6


class VAEOptions(ObjectiveOptions):
    """Options shared by the VAE objectives (``hvae``, ``lvae``)."""

    likelihood: Literal["bernoulli", "continuous-bernoulli"] = Field(
        "bernoulli", description="pixel likelihood p(x|z_1) for data in [0, 1]"
    )
    warmup_steps: int = Field(
        0, ge=0, description="KL warm-up: beta = min(1, step / warmup_steps); 0: beta = 1"
    )
    free_bits: float = Field(
        0.0, ge=0, description="nats per latent dimension below which a layer's KL is not pushed"
    )

    def layer_weights(self, latent_dims: list[int]) -> list[float]:
        """Every KL term has weight 1 once warmed up (beta = 1)."""
        return [1.0] * len(latent_dims)

    def describe(self, latent_dims: list[int]) -> str:
        warmup = (f"KL warm-up over {self.warmup_steps} steps" if self.warmup_steps
                  else "no KL warm-up")
        bits = f"free bits {self.free_bits:g} nats/dim" if self.free_bits else "no free bits"
        return f"{self.label}; {self.likelihood} pixel likelihood; {warmup}; {bits}"

    def spec_errors(self, layers: Sequence) -> list[str]:
        errors = []
        for i, layer in enumerate(layers):
            if layer.encoder_head != "gaussian":
                errors.append(
                    f"layers.{i}.encoder_head: {self.name} needs a Gaussian posterior for "
                    f"z_{i + 1} "
                    f"(the KL term); got {layer.encoder_head}"
                )
            if i > 0 and layer.decoder_head != "gaussian":
                errors.append(
                    f"layers.{i}.decoder_head: {self.name} needs a Gaussian p(z_{i} | z_{i + 1}) "
                    f"(a density for the KL term); got {layer.decoder_head}"
                )
        output = getattr(layers[0].decoder, "output", "sigmoid")
        if output != "sigmoid":
            errors.append(
                f"layers.0.decoder.output: the {self.likelihood} likelihood of {self.name} needs "
                f"pixel probabilities in [0, 1]; set output: sigmoid (got {output})"
            )
        return errors


class HVAEOptions(VAEOptions):
    label = "Markov hierarchical VAE (negative ELBO)"


def pixel_log_likelihood(x: Tensor, probabilities: Tensor, kind: str) -> Tensor:
    r""":math:`\log p(x \mid z_1)` per sample for a Bernoulli or continuous Bernoulli.

    ``probabilities`` is the bottom decoder's mean, clamped into [1e-6, 1 - 1e-6]. The continuous
    Bernoulli adds :math:`\log C(\mu) = \log\frac{2\,\operatorname{artanh}(1 - 2\mu)}{1 - 2\mu}`
    (its limit :math:`\log 2` at :math:`\mu = 1/2`, by a Taylor series near it).
    """
    mu = probabilities.clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    log_p = x * mu.log() + (1 - x) * torch.log1p(-mu)
    if kind == "continuous-bernoulli":
        t = 1 - 2 * mu
        near = t.abs() < 1e-3
        safe = torch.where(near, torch.full_like(t, 0.5), t)
        exact = torch.log(torch.atanh(safe) / safe)
        series = t.square() / 3 + t.pow(4) * (1 / 5 - 1 / 18)
        log_p = log_p + math.log(2.0) + torch.where(near, series, exact)
    return log_p.flatten(1).sum(1)


def _float32(g: Gaussian) -> Gaussian:
    return Gaussian(to_float32(g.mean), None if g.log_var is None else to_float32(g.log_var))


def as_float32(inference: Inference) -> Inference:
    """The same draw with every tensor in float32 (or float64), for the log-densities."""
    return Inference([_float32(q) for q in inference.posteriors],
                     [to_float32(z) for z in inference.codes],
                     [_float32(p) for p in inference.priors], _float32(inference.likelihood),
                     inference.top_down)


class VAE(Objective):
    """The negative ELBO of an :class:`~hierot.objectives.base.Inference`; subclasses infer."""

    density = True
    options: VAEOptions

    @property
    def beta(self) -> float:
        """KL weight: min(1, step / warmup_steps); 1 outside training (``step is None``)."""
        steps = self.options.warmup_steps
        if not steps or self.step is None:
            return 1.0
        return min(1.0, self.step / steps)

    def forward(self, x: Tensor) -> Terms:
        inference = self.infer(x)
        with float32_region(x.device.type):  # densities in float32 under mixed precision
            return self._terms(x, as_float32(inference))

    def _terms(self, x: Tensor, inference: Inference) -> Terms:
        terms = Terms()
        terms.outputs.encodings = inference.posteriors
        terms.outputs.decodings = [inference.likelihood, *inference.priors[:-1]]
        log_lik = pixel_log_likelihood(to_float32(x), inference.likelihood.mean,
                                       self.options.likelihood)
        terms.add("rec_x", -log_lik.mean(), 1.0)
        beta, floor = self.beta, self.options.free_bits
        for i in range(self.depth):
            kl = inference.kl(i)  # (batch, d)
            per_dim = kl.mean(0)
            optimised = per_dim.clamp_min(floor).sum() if floor > 0 else per_dim.sum()
            terms.unweighted[f"kl_z{i + 1}"] = per_dim.sum()
            terms.weighted[f"kl_z{i + 1}"] = beta * optimised
        self.add_penalties(terms)
        return terms

    def log_weight(self, x: Tensor) -> Tensor:
        r""":math:`\log p(x \mid z_1) + \sum_i \log p(z_i \mid z_{i+1})
        - \log q(z_i \mid \cdot)`."""
        inference = self.infer(x)
        log_lik = pixel_log_likelihood(x, inference.likelihood.mean, self.options.likelihood)
        return log_lik + inference.log_prior_ratio()

    def elbo(self, x: Tensor) -> Tensor:
        """The ELBO per sample at one draw (the training objective without warm-up or free bits)."""
        inference = self.infer(x)
        log_lik = pixel_log_likelihood(x, inference.likelihood.mean, self.options.likelihood)
        return log_lik - sum(inference.kl(i).sum(1) for i in range(self.depth))


@objectives.register("hvae", options=HVAEOptions)
class HVAE(VAE):
    """Markov hierarchical VAE: the ELBO of Eq. (1) with the Markov encoder of Eq. (2).

    Inference is the Markov encoder chain (:meth:`Objective.infer`).
    """


__all__ = ["HVAE", "VAE", "HVAEOptions", "VAEOptions", "pixel_log_likelihood"]
