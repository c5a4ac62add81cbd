r"""Post-hoc samplers of the top latent: the ``samplers`` registry.

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

Samplers are the ``samplers`` registry (plug-ins: entry-point group ``hierot.samplers``); each is
a factory ``(options) -> sampler`` registered with its options model, the sampler having a
``needs_codes`` flag, ``fit(codes, seed)`` (``codes``: the encoded training means
``(n, *z_N shape)``, or an empty ``(0, *z_N shape)`` when ``needs_codes`` is false) and
``sample(n, generator)`` returning ``(n, *z_N shape)`` on the CPU. Fitting them to a trained run
and decoding what they draw is :mod:`hierot.evaluation.samplers`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from hierot.components import ComponentOptions
from hierot.errors import HierotError
from hierot.registry import samplers


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
        if self.shape is None:
            raise RuntimeError("PriorSampler.sample before fit")
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
        self.mixture: Any = None  # scikit-learn's GaussianMixture once fitted
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
        if m is None or self.shape is None:
            raise RuntimeError("GMMSampler.sample before fit")
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
        if self.codes is None:
            raise RuntimeError("EmpiricalSampler.sample before fit")
        return self.codes[torch.randint(len(self.codes), (n,), generator=generator)]


def parse_sampler(text: str | dict) -> ComponentOptions:
    """Options of a sampler from a name (``gmm``) or a YAML mapping
    (``{name: gmm, n_components: 20}``).

    Raises
    ------
    HierotError
        For an unknown name (with the valid ones) or invalid options (naming the field).
    """
    return samplers.parse(text, label="sampler")


def label(options: ComponentOptions) -> str:
    """A short name of a sampler with its non-default options (``gmm`` or
    ``gmm(n_components=20)``)."""
    fields = options.model_dump(exclude_defaults=True)
    fields.pop("name", None)
    inner = ",".join(f"{k}={v}" for k, v in fields.items())
    return f"{options.name}({inner})" if inner else options.name


__all__ = ["EmpiricalSampler", "GMMOptions", "GMMSampler", "PriorSampler", "label",
           "parse_sampler", "samplers"]
