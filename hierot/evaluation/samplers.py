r"""Post-hoc samplers of the top latent, and the two ways to decode what they draw.

A WAE's top latent is matched to :math:`p(z_N) = \mathcal N(0, I)` only as well as the divergence
allows: regions of the prior that no data encodes to (*prior holes*) decode to nothing like the
data, and regions of the aggregate posterior :math:`Q(z_N)` that the prior rarely visits are
rarely sampled. A *post-hoc sampler* replaces the prior by a density fitted to the encoded
training set after training (Ghosh et al., *From Variational to Deterministic Autoencoders*,
ICLR 2020, fit a Gaussian mixture this way), which separates the prior-hole effect from the
decoders' quality:

``prior``
    :math:`z_N \sim \mathcal N(0, I)`: the model as trained.
``gmm``
    A Gaussian mixture (scikit-learn's ``GaussianMixture``, ``n_components`` components, full
    covariances by default) fitted by EM to the encoded means :math:`\mathbb E[z_N | x]` of the
    training set.
``empirical``
    The encoded means of training points drawn uniformly (the aggregate posterior's means
    themselves; an upper bound on what any sampler of :math:`Q(z_N)` can do with these decoders,
    and a memoriser, not a generative model).

Whatever draws :math:`z_N`, it is decoded down to x along one of two paths:

``ancestral``
    :math:`z_{i-1} \sim p_{\theta_i}(z_{i-1} | z_i)` with each layer's noise, the mean of
    :math:`p(x | z_1)` last: samples of the generative model (Eq. 1), what Eq. 7 trains.
``mean``
    :math:`z_{i-1} = \mu_{\theta_i}(z_i)` at every layer: the decoder-mean path, deterministic
    given :math:`z_N` (as the decodes of a grid over :math:`z_N`, Figure 2c).

Samplers live in the ``sampler`` registry (plug-ins: entry-point group ``hierot.samplers``);
each is a factory ``(options) -> sampler`` with a ``needs_codes`` flag, ``fit(codes, seed)``
(``codes``: the encoded training means ``(n, *z_N shape)``, or an empty ``(0, *z_N shape)`` when
``needs_codes`` is false) and ``sample(n, generator)`` returning ``(n, *z_N shape)`` on the CPU.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import yaml
from pydantic import Field, ValidationError
from torch import Tensor

from hierot._registry import Registry
from hierot._utils import seeded
from hierot._yaml import parse_yaml
from hierot.components import ComponentOptions
from hierot.errors import HierotError
from hierot.evaluation.trained import LoadedRun, chunks, encode, subset
from hierot.model import Hierarchy

samplers = Registry("sampler", group="hierot.samplers")
"""Post-hoc samplers of the top latent, by name."""
PATHS = ("ancestral", "mean")
"""Decoding paths from z_N to x (module docstring)."""
FIT_POINTS = 20000
"""At most this many training points are encoded to fit a sampler."""


@samplers.register("prior")
class PriorSampler:
    """The model's own prior N(0, I) (nothing to fit)."""

    needs_codes = False

    def __init__(self, options: ComponentOptions):
        self.options = options
        self.shape: tuple[int, ...] | None = None

    def fit(self, codes: Tensor, seed: int = 0) -> PriorSampler:
        self.shape = tuple(codes.shape[1:])
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn((n, *self.shape), generator=generator)


class GMMOptions(ComponentOptions):
    n_components: int = Field(10, ge=1, description="mixture components")
    covariance: Literal["full", "diag", "tied", "spherical"] = Field(
        "full", description="scikit-learn's covariance_type")
    reg_covar: float = Field(1e-6, gt=0, description="added to the covariances' diagonals")


@samplers.register("gmm", options=GMMOptions)
class GMMSampler:
    """A Gaussian mixture fitted by EM to the encoded top-latent means of the training set."""

    needs_codes = True

    def __init__(self, options: GMMOptions):
        self.options = options
        self.mixture = None
        self.shape: tuple[int, ...] | None = None

    def fit(self, codes: Tensor, seed: int = 0) -> GMMSampler:
        from sklearn.mixture import GaussianMixture

        self.shape = tuple(codes.shape[1:])
        flat = codes.reshape(len(codes), -1).double().numpy()
        if len(flat) < self.options.n_components:
            raise HierotError(f"sampler gmm: n_components={self.options.n_components} is more than "
                              f"the {len(flat)} training points")
        self.mixture = GaussianMixture(
            self.options.n_components, covariance_type=self.options.covariance,
            reg_covar=self.options.reg_covar, random_state=seed).fit(flat)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        m = self.mixture
        components = torch.multinomial(torch.as_tensor(m.weights_), n, replacement=True,
                                       generator=generator)
        k, d = m.means_.shape
        covariances = {  # (k, d, d) whatever scikit-learn's covariance_type
            "full": lambda c: c,
            "tied": lambda c: np.broadcast_to(c, (k, d, d)),
            "diag": lambda c: np.einsum("kd,de->kde", c, np.eye(d)),
            "spherical": lambda c: c[:, None, None] * np.eye(d),
        }[self.options.covariance](m.covariances_)
        chol = torch.linalg.cholesky(torch.from_numpy(np.ascontiguousarray(covariances)))
        noise = torch.randn((n, d), generator=generator, dtype=torch.float64)
        z = torch.from_numpy(m.means_)[components] + torch.einsum(
            "nij,nj->ni", chol[components], noise)
        return z.float().reshape(n, *self.shape)


@samplers.register("empirical")
class EmpiricalSampler:
    """Encoded top-latent means of training points, drawn uniformly with replacement."""

    needs_codes = True

    def __init__(self, options: ComponentOptions):
        self.options = options
        self.codes: Tensor | None = None

    def fit(self, codes: Tensor, seed: int = 0) -> EmpiricalSampler:
        self.codes = codes.float()
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.codes[torch.randint(len(self.codes), (n,), generator=generator)]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def parse_sampler(text: str | dict) -> ComponentOptions:
    """Options of a sampler from a name (``gmm``) or a YAML mapping (``{name: gmm, n_components: 20}``).

    Raises
    ------
    HierotError
        For an unknown name (with the valid ones) or invalid options (naming the field).
    """
    try:
        raw = parse_yaml(text) if isinstance(text, str) else dict(text)
    except yaml.YAMLError as exc:
        raise HierotError(f"sampler: {text!r} is not valid YAML ({_first_line(exc)}); give a "
                          f"name or a mapping such as {{name: gmm}}; known samplers: "
                          f"{samplers.names()}") from None
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise HierotError(f"sampler: expected a name or a mapping with `name`, got {text!r}; "
                          f"known samplers: {samplers.names()}")
    try:
        return samplers.tagged_options(str(raw["name"]))(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HierotError(f"sampler {raw['name']}: {problems}") from None


def label(options: ComponentOptions) -> str:
    """A short name of a sampler with its non-default options (``gmm`` or ``gmm(n_components=20)``)."""
    fields = options.model_dump(exclude_defaults=True)
    fields.pop("name", None)
    inner = ",".join(f"{k}={v}" for k, v in fields.items())
    return f"{options.name}({inner})" if inner else options.name


def top_codes(run: LoadedRun, *, points: int = FIT_POINTS, seed: int = 0) -> Tensor:
    """Encoded means E[z_N | x] of (at most ``points``) training points."""
    rows = subset(len(run.data.train_x), points, seed)
    return encode(run.objective, run.data.train_x[rows], device=run.device)[-1]  # its posterior


def fitted(run: LoadedRun, options: ComponentOptions, *, seed: int = 0, codes: Tensor | None = None):
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
