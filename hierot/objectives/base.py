r"""The contract between hierot and an objective, built-in or plug-in.

An objective is registered in :data:`hierot.registry.objectives` (entry-point group
``hierot.objectives``) as a class, with options subclassing :class:`ObjectiveOptions`
(``objectives.register(name, options=...)``). The
builder calls it as ``factory(options, context=ObjectiveContext(...))``: everything the objective
may use from the framework is in the context, explicitly. Its ``forward(x)`` returns
:class:`~hierot.objectives.terms.Terms`; the trainer minimises ``terms.total``.

What the base class gives every objective:

* :meth:`Objective.match`: a divergence between encoded samples and prior samples that *always*
  applies the context's ``gather`` first (the all-gather of the global batch under data
  parallelism, the identity on one process), so an objective cannot skip it by mistake;
* :meth:`Objective.add_penalties`: the spec's penalties (Eq. 12) with their own weights;
* :meth:`Objective.set_step`: the trainer tells the objective the step before each training step
  (KL warm-up uses it); ``step is None`` means "trained": every schedule at its end value;
* the hooks evaluation uses: :meth:`~Objective.encode` (the objective's own posterior),
  :meth:`~Objective.infer` (posterior, prior and likelihood of one draw, for KL per layer),
  :meth:`~Objective.decode`, :meth:`~Objective.sample`, :meth:`~Objective.reconstruct`, and, for
  objectives with ``density = True``, :meth:`~Objective.log_weight` (importance-weighted log p(x)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from hierot._utils import identity
from hierot.components import ComponentOptions, Cost, Divergence, Penalty
from hierot.distributions import Gaussian
from hierot.model import Hierarchy
from hierot.objectives.terms import Terms
from hierot.precision import float32_region, to_float32


class ObjectiveOptions(ComponentOptions):
    """Base of every objective's options (frozen, unknown fields are errors).

    Subclasses set ``label`` (a short human name with its equation, shown by ``hierot validate``
    and in reports) and override the hooks below where they apply.
    """

    label: ClassVar[str] = "objective"

    def layer_weights(self, latent_dims: list[int]) -> list[float] | None:
        """Weight of the per-layer term n = 0..N-1 (``None``: the objective has none)."""
        return None

    def match_weight(self) -> float | None:
        """Weight of the top divergence (``None``: the objective does not use the divergence)."""
        return None

    def spec_errors(self, layers: Sequence) -> list[str]:
        """Problems between these options and the spec's layers, ``path: message`` each.

        ``layers`` are the spec's :class:`~hierot.spec.LayerSpec`; paths are relative to the spec
        root (``layers.2.decoder_head: ...``) or to the objective (``objective.weights...``).
        """
        return []

    def describe(self, latent_dims: list[int]) -> str:
        """One line for ``hierot validate``: the label and the weights."""
        parts = [self.label]
        weights, match = self.layer_weights(latent_dims), self.match_weight()
        if weights is not None:
            parts.append("weights of the layer terms " + ", ".join(f"{w:.4g}" for w in weights))
        if match is not None:
            parts.append(f"divergence weight {match:.4g}")
        return "; ".join(parts)


@dataclass(frozen=True)
class ObjectiveContext:
    """What the builder hands an objective's factory.

    Attributes
    ----------
    model:
        The hierarchy (encoders, decoders).
    costs:
        ``costs[n]`` is c_n on z_n (z_0 = x), n = 0..N-1, from the layers' ``cost``.
    divergence:
        The spec's top divergence D(samples, prior_samples).
    penalties:
        The spec's penalties by name, each with its per-layer weights.
    gather:
        Applied to encoded samples before a divergence: the identity on one process, the
        differentiable all-gather of the global batch under data parallelism. Used through
        :meth:`Objective.match`.
    prior_samples:
        How many prior samples a divergence compares against (``None``: as many as encoded).
    """

    model: Hierarchy
    costs: Sequence[Cost]
    divergence: Divergence
    penalties: Mapping[str, Penalty]
    gather: Callable[[Tensor], Tensor] = identity
    prior_samples: int | None = None

    @property
    def num_layers(self) -> int:
        return self.model.depth


def gaussian_kl(q: Gaussian, p: Gaussian) -> Tensor:
    r"""KL(q || p) per dimension for diagonal Gaussians, shape ``(batch, d)``.

    .. math:: \tfrac12\big(\log\sigma_p^2 - \log\sigma_q^2
              + (\sigma_q^2 + (\mu_q - \mu_p)^2)/\sigma_p^2 - 1\big)
    """
    lq, lp = q.stochastic_log_var.flatten(1), p.stochastic_log_var.flatten(1)
    diff = (q.mean - p.mean).flatten(1)
    return 0.5 * (lp - lq + (lq.exp() + diff.square()) * (-lp).exp() - 1.0)


def gaussian_log_density(z: Tensor, g: Gaussian) -> Tensor:
    r""":math:`\log \mathcal N(z; \mu, \operatorname{diag}\sigma^2)` per dimension,
    ``(batch, d)``."""
    lv = g.stochastic_log_var.flatten(1)
    return -0.5 * (math.log(2 * math.pi) + lv + (z - g.mean).flatten(1).square() * (-lv).exp())


def standard_normal(like: Tensor) -> Gaussian:
    """N(0, I) with the shape of ``like``."""
    zeros = torch.zeros_like(like)
    return Gaussian(zeros, zeros)


@dataclass
class Inference:
    """One reparameterised draw z_1..z_N from an objective's posterior, with its densities.

    Attributes
    ----------
    posteriors:
        ``posteriors[i]`` is the Gaussian z_{i+1} was drawn from: q(z_{i+1} | z_i) for the
        Markov encoder, the merged q(z_{i+1} | z_{i+2}, x) of the ladder.
    codes:
        The draws z_1..z_N.
    priors:
        ``priors[i]`` is p(z_{i+1} | z_{i+2}) at the drawn z_{i+2}; the last is N(0, I).
    likelihood:
        p(x | z_1) at the drawn z_1 (the bottom decoder's output).
    top_down:
        True when each posterior is conditioned on the draw above it (the ladder): then KL(q || p)
        given z_{i+2} is analytic. With the Markov encoder z_{i+2} is drawn *after* z_{i+1}, and
        only the top layer's KL against N(0, I) is analytic.
    """

    posteriors: list[Gaussian]
    codes: list[Tensor]
    priors: list[Gaussian]
    likelihood: Gaussian
    top_down: bool = False

    def is_defined(self, i: int) -> bool:
        """Whether KL of layer i + 1 exists (both its posterior and its prior are Gaussian)."""
        return not (self.posteriors[i].deterministic or self.priors[i].deterministic)

    def analytic(self, i: int) -> bool:
        return self.top_down or i == len(self.codes) - 1

    def kl(self, i: int) -> Tensor:
        r"""The KL term of layer i + 1 per sample and dimension, ``(batch, d)``.

        Analytic where :meth:`analytic`, else the one-sample estimate
        :math:`\log q(z) - \log p(z)` at the drawn z (unbiased for the ELBO's KL term).
        """
        q, p = self.posteriors[i], self.priors[i]
        if self.analytic(i):
            return gaussian_kl(q, p)
        z = self.codes[i]
        return gaussian_log_density(z, q) - gaussian_log_density(z, p)

    def log_prior_ratio(self) -> Tensor:
        r""":math:`\sum_i \log p(z_i \mid z_{i+1}) - \log q(z_i \mid \cdot)` at the draw,
        ``(batch,)``."""
        total = torch.zeros(())
        for z, q, p in zip(self.codes, self.posteriors, self.priors):
            total = total + (gaussian_log_density(z, p) - gaussian_log_density(z, q)).sum(1)
        return total


class Objective(nn.Module):
    """Base class of every objective; see the module docstring for the contract.

    Parameters
    ----------
    options:
        The objective's options (a subclass of :class:`ObjectiveOptions`, with ``name``).
    context:
        What the framework provides (:class:`ObjectiveContext`).
    """

    density: ClassVar[bool] = False
    """Whether :meth:`log_weight` is defined (the objective is a density model of x)."""

    def __init__(self, options: ObjectiveOptions, *, context: ObjectiveContext):
        super().__init__()
        self.options = options
        self.model = context.model
        self.costs = list(context.costs)
        self.divergence = context.divergence
        self.penalties = dict(context.penalties)
        self.prior_samples = context.prior_samples
        self._gather = context.gather
        self.step: int | None = None

    @property
    def depth(self) -> int:
        return self.model.depth

    # -- framework services ------------------------------------------------------------------------
    def set_step(self, step: int | None) -> None:
        """The training step about to run (``None``: after training; schedules at their end)."""
        self.step = step

    def match(self, encoded: Tensor, prior: Callable[[int], Tensor]) -> Tensor:
        """The divergence between ``encoded`` and ``prior(m)``, on the global batch.

        ``encoded`` always passes through the context's gather first, so under data parallelism
        the divergence sees the global batch (``distributed.divergence: global``); ``m`` is the
        context's ``prior_samples``, or as many as the gathered encoded samples. The divergence
        runs in float32 under mixed precision (:mod:`hierot.precision`).
        """
        encoded = self._gather(encoded)
        drawn = prior(self.prior_samples or encoded.shape[0])
        # in float32 under mixed precision (hierot.precision): kernel sums and log-sum-exps
        encoded, drawn = to_float32(encoded), to_float32(drawn)
        if drawn.dtype != encoded.dtype:  # a prior drawn under autocast (the implicit prior)
            drawn = drawn.to(encoded.dtype)
        with float32_region(encoded.device.type):
            return self.divergence(encoded, drawn)

    def add_penalties(self, terms: Terms) -> None:
        """Add every penalty as ``pen_{name}``: plain sum and sum_i lambda_i value_i (Eq. 12)."""
        for name, penalty in self.penalties.items():
            per_layer = to_float32(penalty(terms.outputs))
            weights = per_layer.new_tensor(penalty.weights)
            terms.unweighted[f"pen_{name}"] = per_layer.sum()
            terms.weighted[f"pen_{name}"] = (weights * per_layer).sum()

    # -- hooks for evaluation --------------------------------------------------------------------
    def encode(
        self, x: Tensor, depth: int | None = None, sample: bool = True
    ) -> tuple[list[Gaussian], list[Tensor]]:
        """The posterior of z_1..z_depth and its codes (draws, or means when not ``sample``).

        The default is the Markov encoder chain of :meth:`hierot.model.Hierarchy.encode`.
        """
        return self.model.encode(x, depth, sample)

    def infer(self, x: Tensor) -> Inference:
        """One reparameterised draw of every latent with its posterior, prior and likelihood."""
        model = self.model
        posteriors, codes = self.encode(x)
        priors = [model.decoders[i + 1](codes[i + 1]) for i in range(model.depth - 1)]
        priors.append(standard_normal(codes[-1]))
        return Inference(posteriors, codes, priors, model.decoders[0](codes[0]))

    def decode(self, z: Tensor, layer: int, sample: bool = False) -> Tensor:
        """x from z_layer through the generative path (means unless ``sample``)."""
        return self.model.decode(z, layer, sample)

    def sample(self, n: int) -> Tensor:
        """n samples of x from the generative model (ancestral from N(0, I))."""
        return self.model.generate(n)

    def reconstruct(self, x: Tensor, depth: int) -> Tensor:
        """x encoded to z_depth (the posterior's means) and decoded back by means."""
        _, codes = self.encode(x, depth, sample=False)
        return self.decode(codes[depth - 1], depth)

    def log_weight(self, x: Tensor) -> Tensor:
        r""":math:`\log p(x, z) - \log q(z \mid x)` at one draw z ~ q, ``(batch,)``.

        Defined when ``density`` is true; importance-weighted log p(x) (Burda et al., 2016)
        averages its exponential over K draws.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no density of x")

    def forward(self, x: Tensor) -> Terms:  # pragma: no cover - abstract
        raise NotImplementedError


__all__ = [
    "Inference",
    "Objective",
    "ObjectiveContext",
    "ObjectiveOptions",
    "gaussian_kl",
    "gaussian_log_density",
    "standard_normal",
]
