r"""The top divergence of the whole encoded training set, in linear memory (``hierot eval``).

Each training step estimates :math:`\mathcal D_N(Q_N^\text{agg}, P)` (the last term of Eq. 10)
from one batch against ``train.prior_samples`` prior draws. :func:`whole_set_divergence` computes
the quantity that estimates: the run's own divergence (its options, with ``backend: online``
where it has one) between **every** training point, encoded with reparameterised samples, and as
many samples of :math:`\mathcal N(0, I)`. The online backends (:mod:`hierot.divergences.tiled`)
hold no :math:`n \times n` matrix, so this runs on a CPU for tens of thousands of points.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from hierot._utils import seeded
from hierot.components import ChecksSizes
from hierot.errors import HierotError
from hierot.evaluation.trained import encode
from hierot.objectives import Objective
from hierot.registry import divergences


def online_options(options):
    """``options`` with ``backend: online`` where the divergence has that backend (else as is)."""
    fields = type(options).model_fields
    backend = fields.get("backend")
    if backend is None or "online" not in str(backend.annotation):
        return options
    return options.model_copy(update={"backend": "online"})


@torch.no_grad()
def whole_set_divergence(
    objective: Objective, x: Tensor, options, *, device="cpu", seed: int = 0
) -> dict:
    r"""The run's divergence between all of encoded ``x`` at the top latent and as many prior draws.

    Parameters
    ----------
    objective:
        The run's objective (its posterior encodes ``x``).
    x:
        The whole training split.
    options:
        The run's ``spec.divergence``; switched to ``backend: online`` where it has one.
    device, seed:
        Where to encode and compute; the seed of the reparameterisations and prior draws.

    Returns
    -------
    dict
        ``divergence`` (its options, as used), ``samples``, ``value``, ``seconds``; or
        ``skipped`` with the reason when the divergence refuses that many samples.
    """
    used = online_options(options)
    result: dict = {"divergence": used.model_dump(mode="json"), "samples": len(x)}
    with seeded(seed):
        encoded = encode(objective, x, sample=True, device=device)[-1].to(device)
        prior = torch.randn(encoded.shape, device=device).to(encoded.dtype)
    dim = encoded[0].numel()
    problem = used.size_error(len(x), len(x), dim) if isinstance(used, ChecksSizes) else None
    if problem:
        return {**result, "skipped": problem}
    started = time.perf_counter()
    try:
        value = divergences.build(used)(encoded, prior)
    except HierotError as exc:  # out of memory, reported with the backend to switch to
        return {**result, "skipped": str(exc)}
    return {**result, "value": float(value), "seconds": round(time.perf_counter() - started, 3)}
