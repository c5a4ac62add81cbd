r"""Post-hoc samplers fitted to a trained run, and the two ways to decode what they draw.

The samplers themselves (``prior``, ``gmm``, ``empirical`` and plug-ins) are the ``samplers``
registry, in :mod:`hierot.samplers`.

Whatever draws :math:`z_N`, it is decoded down to x along one of two paths:

``ancestral``
    :math:`z_{i-1} \sim p_{\theta_i}(z_{i-1} | z_i)` with each layer's noise, the mean of
    :math:`p(x | z_1)` last: samples of the generative model (Eq. 1), what Eq. 7 trains.
``mean``
    :math:`z_{i-1} = \mu_{\theta_i}(z_i)` at every layer: the decoder-mean path, deterministic
    given :math:`z_N` (as the decodes of a grid over :math:`z_N`, Figure 2c).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hierot._utils import seeded
from hierot.components import ComponentOptions
from hierot.errors import HierotError
from hierot.evaluation.trained import LoadedRun, chunks, encode, subset
from hierot.model import Hierarchy
from hierot.registry import samplers
from hierot.samplers import label, parse_sampler

PATHS = ("ancestral", "mean")
"""Decoding paths from z_N to x (module docstring)."""
FIT_POINTS = 20000
"""At most this many training points are encoded to fit a sampler."""


def top_codes(run: LoadedRun, *, points: int = FIT_POINTS, seed: int = 0) -> Tensor:
    """Encoded means E[z_N | x] of (at most ``points``) training points."""
    rows = subset(len(run.data.train_x), points, seed)
    return encode(run.objective, run.train_x[rows], device=run.device)[-1]  # its posterior


def fitted(run: LoadedRun, options: ComponentOptions, *, seed: int = 0,
           codes: Tensor | None = None):
    """The sampler ``options`` fitted to the run's encoded training set (``codes`` if given)."""
    sampler = samplers.build(options)
    if not sampler.needs_codes:
        codes = torch.empty((0, *run.model.latent_shapes[-1]))
    elif codes is None:
        codes = top_codes(run, seed=seed)
    return sampler.fit(codes, seed)


@torch.no_grad()
def decode_top(model: Hierarchy, z: Tensor, path: str, *, device="cpu") -> Tensor:
    """x from top-latent draws ``z`` along ``path`` (``ancestral`` or ``mean``), batched, CPU."""
    if path not in PATHS:
        raise HierotError(f"unknown sampling path {path!r}; choose one of {list(PATHS)}")
    out = []
    for part in chunks(len(z)):
        h = z[part].to(device)
        for layer in range(model.depth, 0, -1):
            decoded = model.decoders[layer - 1](h)
            h = decoded.sample_or_mean(path == "ancestral" and layer > 1)
        out.append(h.cpu())
    return torch.cat(out)


def draw(model: Hierarchy, sampler, n: int, path: str, *, seed: int = 0, device="cpu") -> Tensor:
    """``n`` samples of x: ``sampler`` draws z_N (seeded), decoded along ``path``."""
    generator = torch.Generator().manual_seed(seed)
    z = sampler.sample(n, generator)
    with seeded(seed):
        return decode_top(model, z, path, device=device)


__all__ = ["PATHS", "decode_top", "draw", "fitted", "label", "parse_sampler", "samplers"]
