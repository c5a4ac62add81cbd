r"""Held-out metrics of a trained hierarchy that need only the model and the data.

* :func:`objective_terms`: every term of the run's own objective (Eq. 10 or Eq. 7) on the test
  split, model in eval mode, averaged over test batches of the training batch size.
* :func:`reconstruction_errors`: the quantitative Figure 3b. For each depth i, x is encoded up
  to z_i with the encoders' means and decoded back with the decoders' means,
  :math:`\hat x_i = \mu_{\theta_1} \circ \dots \circ \mu_{\theta_i} \circ \mu_{\phi_i} \circ
  \dots \circ \mu_{\phi_1}(x)`, and :math:`\|x - \hat x_i\|^2` is averaged over the test set.
* :func:`top_divergences`: :math:`\mathcal D(Q_N^\text{agg}, \mathcal N(0, I))` by MMD and by
  Sinkhorn, with the divergence between two independent prior samples of the same size as the
  estimator's floor.
* :func:`active_units`: Burda et al. (2016): unit u of z_i is active when
  :math:`\mathrm{Cov}_x\big(\mathbb E_{q(z_i|x)}[z_{i,u}]\big) > 0.01`.
* :func:`kl_per_layer`: the KL term of every layer of the hierarchical ELBO under the objective's
  own posterior, :math:`\mathbb E_x \mathbb E_q \log q(z_i \mid \cdot) - \log p(z_i \mid z_{i+1})`
  (for any objective whose conditionals are Gaussian: a WAE's too).
* :func:`importance_weighted_log_likelihood`: Burda et al. (2016), Eq. 8, for objectives that are
  density models of x (the VAEs).

Metrics that depend on the posterior (codes, reconstructions, active units, KL) take the
objective: its :meth:`~hierot.objectives.Objective.encode` is the Markov encoder chain for the
WAEs and the HVAE, the ladder posterior for the LVAE.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hierot._utils import one_thread, seeded
from hierot.errors import HierotError
from hierot.evaluation.trained import (
    chunks,
    decode,
    encode,
    encoding_means,
    subset,
)
from hierot.model import Hierarchy
from hierot.objectives import Objective
from hierot.objectives.base import Inference
from hierot.registry import divergences

DIVERGENCES = ("mmd", "sinkhorn")
"""Divergences reported between the encoded test data and the prior, with default options."""
ACTIVE_THRESHOLD = 0.01
"""Burda et al.'s threshold on the variance across data points of a unit's posterior mean."""


@torch.no_grad()
def objective_terms(
    objective: Objective, x: Tensor, batch_size: int, *, device="cpu", seed: int = 0
) -> dict:
    """Every term of ``objective`` on ``x``, averaged over batches of ``batch_size``.

    Only full batches are used (the divergence estimates depend on the batch size, so they stay
    comparable with the training curves); when ``x`` is smaller than one batch it is one batch.
    Prior samples and reparameterised samples are drawn from a generator seeded with ``seed``.

    Returns
    -------
    dict
        ``unweighted`` and ``weighted`` (term name -> mean), ``total``, ``batch_size``,
        ``batches``.
    """
    n = len(x)
    size = min(batch_size, n)
    if size < 2:
        raise HierotError(f"the test split has {n} example(s); the objective needs at least 2")
    batches = n // size
    sums: dict[str, dict[str, float]] = {"unweighted": {}, "weighted": {}}
    total = 0.0
    with seeded(seed):
        for b in range(batches):
            terms = objective(x[b * size:(b + 1) * size].to(device))
            for kind, running in sums.items():
                for name, value in getattr(terms, kind).items():
                    running[name] = running.get(name, 0.0) + float(value)
            total += float(terms.total)
    return {
        "unweighted": {k: v / batches for k, v in sums["unweighted"].items()},
        "weighted": {k: v / batches for k, v in sums["weighted"].items()},
        "total": total / batches,
        "batch_size": size,
        "batches": batches,
    }


@torch.no_grad()
def reconstruction_errors(model: Hierarchy | Objective, x: Tensor, *, device="cpu") -> dict:
    r"""Squared error of x against its reconstruction from every encoding depth (Figure 3b).

    Returns
    -------
    dict
        ``l2sq``: ``{"z1": e_1, ..., "zN": e_N}`` with
        :math:`e_i = \frac1n \sum_x \|x - \hat x_i\|^2` (summed over the pixels, as the squared
        Euclidean cost c_0 of the paper); ``mse``: the same divided by the number of pixels.
    """
    codes = encode(model, x, device=device)
    pixels = math.prod(x.shape[1:])
    l2sq = {}
    for depth in range(1, model.depth + 1):
        total = 0.0
        for part in chunks(len(x)):
            rec = decode(model, codes[depth - 1][part], depth, device=device)
            total += float((x[part] - rec).pow(2).flatten(1).sum(1).sum())
        l2sq[f"z{depth}"] = total / len(x)
    return {"l2sq": l2sq, "mse": {k: v / pixels for k, v in l2sq.items()}}


def default_divergence(name: str):
    """The registered divergence ``name`` with its default options."""
    return divergences.build(divergences.tagged_options(name)(name=name))


@torch.no_grad()
def top_divergences(
    model: Hierarchy | Objective, x: Tensor, *, n: int = 1000, device="cpu", seed: int = 0,
    names: tuple[str, ...] = DIVERGENCES,
) -> dict:
    r"""Divergences between encoded ``x`` at the top latent and the prior N(0, I).

    Up to ``n`` test points are encoded with reparameterised samples (samples of
    :math:`Q_N^\text{agg}`, Eq. 11, as the objective matches them) and compared with ``n``
    prior samples. ``floor`` holds the same divergence between two independent prior samples
    of that size: what a perfectly matched aggregate posterior would score with this many
    samples (about 0 for the unbiased MMD; positive for the Sinkhorn divergence, whose
    finite-sample estimate is biased upwards).

    Returns
    -------
    dict
        ``layer`` (N), ``samples``, then per divergence name its value, and ``floor``.
    """
    rows = subset(len(x), n, seed)
    with seeded(seed):
        encoded = encode(model, x[rows], sample=True, device=device)[-1]
        prior = torch.randn(2, *encoded.shape)
    result: dict = {"layer": model.depth, "samples": len(rows), "floor": {}}
    for name in names:
        try:
            divergence = default_divergence(name)
            with one_thread("cpu"):  # small problems: extra threads only wait on each other
                result[name] = float(divergence(encoded, prior[0]))
                result["floor"][name] = float(divergence(prior[1], prior[0]))
        except (HierotError, ImportError, RuntimeError) as exc:  # a missing optional backend
            result[name] = None
            result["floor"][name] = None
            result.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
    return result


@torch.no_grad()
def active_units(
    model: Hierarchy | Objective, x: Tensor, *, samples: int = 8,
    threshold: float = ACTIVE_THRESHOLD,
    device="cpu", seed: int = 0,
) -> dict:
    r"""Active units of every latent layer (Burda et al., 2016).

    :math:`\mathbb E_{q(z_i|x)}[z_i]` is estimated by averaging the mean of
    :math:`q(z_i | z_{i-1})` over ``samples`` draws of the chain below it (exact for z_1, and
    for every layer when the encoders are deterministic); a unit is active when the variance of
    that estimate across ``x`` exceeds ``threshold``.

    Returns
    -------
    dict
        ``count`` and ``dims`` (``{"z1": ..., ...}``), ``threshold``, ``samples``.
    """
    with seeded(seed):
        draws = [encoding_means(model, x, device=device) for _ in range(samples)]
    count, dims = {}, {}
    for i in range(model.depth):
        posterior_mean = torch.stack([d[i] for d in draws]).mean(0).flatten(1).double()
        variance = posterior_mean.var(0, unbiased=True) if len(x) > 1 else torch.zeros(1)
        count[f"z{i + 1}"] = int((variance > threshold).sum())
        dims[f"z{i + 1}"] = posterior_mean.shape[1]
    return {"count": count, "dims": dims, "threshold": threshold, "samples": samples}


@torch.no_grad()
def kl_per_layer(objective: Objective, x: Tensor, *, device="cpu", seed: int = 0) -> dict:
    r"""The KL term of every layer, in nats per data point, averaged over ``x``.

    From one draw of the objective's posterior per point (:meth:`Objective.infer`): for layer
    i < N, :math:`\mathrm{KL}(q(z_i \mid \cdot) \,\|\, p(z_i \mid z_{i+1}))`, analytic when q
    conditions on the drawn z_{i+1} (the ladder), else the one-sample estimate
    :math:`\log q(z_i) - \log p(z_i \mid z_{i+1})`; for the top layer, analytic against N(0, I).
    For a WAE these are the ELBO's KL terms of the trained networks read as a hierarchical VAE:
    defined when the encoder and the decoder above are Gaussian, ``None`` where either is
    deterministic. Their sum minus the ``rec_x`` log-likelihood is not a WAE's objective.

    Returns
    -------
    dict
        ``nats`` (``{"z1": ..., ...}``, ``None`` where undefined), ``estimate`` per layer
        (``analytic``, ``monte-carlo`` or ``undefined``), ``points``.
    """
    sums: list[float] = [0.0] * objective.depth
    estimate: dict[str, str] = {}
    with seeded(seed):
        for part in chunks(len(x)):
            inference: Inference = objective.infer(x[part].to(device))
            for i in range(objective.depth):
                name = f"z{i + 1}"
                if not inference.is_defined(i):
                    estimate[name] = "undefined"
                    continue
                estimate[name] = "analytic" if inference.analytic(i) else "monte-carlo"
                sums[i] += float(inference.kl(i).sum())
    nats = {f"z{i + 1}": (None if estimate[f"z{i + 1}"] == "undefined" else sums[i] / len(x))
            for i in range(objective.depth)}
    return {"nats": nats, "estimate": estimate, "points": len(x),
            "density_model": bool(objective.density)}


IW_SAMPLES = 100
"""Importance samples K per point of :func:`importance_weighted_log_likelihood` (Burda et al.)."""


@torch.no_grad()
def importance_weighted_log_likelihood(
    objective: Objective, x: Tensor, *, samples: int = IW_SAMPLES, device="cpu", seed: int = 0,
    rows_per_batch: int = 5000,
) -> dict:
    r"""Importance-weighted estimate of :math:`\log p(x)` in nats (Burda et al. 2016, Eq. 8).

    .. math:: \mathcal L_K(x) = \log \frac1K \sum_{k=1}^K
              \frac{p(x, z^{(k)})}{q(z^{(k)} \mid x)}, \qquad z^{(k)} \sim q(z \mid x),

    a lower bound on :math:`\log p(x)` that increases with K (K = 1 is the ELBO), computed with
    ``logsumexp`` from :meth:`Objective.log_weight`; ``x`` is repeated K times in batches of at
    most ``rows_per_batch`` rows (the model is in eval mode, so rows are independent).

    Returns
    -------
    dict
        ``log_px`` (mean of :math:`\mathcal L_K`), ``elbo`` (mean of the first draw's log weight,
        :math:`\mathcal L_1`), ``samples`` (K), ``points``, ``unit``.
    """
    if not objective.density:
        raise HierotError(f"{type(objective).__name__} is not a density model of x")
    per_batch = max(1, rows_per_batch // samples)
    bound, elbo = 0.0, 0.0
    with seeded(seed):
        for part in chunks(len(x), per_batch):
            rows = x[part].to(device)
            repeated = rows.repeat_interleave(samples, dim=0)
            log_w = objective.log_weight(repeated).view(len(rows), samples).double()
            bound += float((log_w.logsumexp(1) - math.log(samples)).sum())
            elbo += float(log_w[:, 0].sum())
    return {"log_px": bound / len(x), "elbo": elbo / len(x), "samples": samples,
            "points": len(x), "unit": "nats"}
