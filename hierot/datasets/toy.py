r"""``toy-hierarchy``: vectors drawn from a known hierarchy of latent variables.

With ``dims`` :math:`= (d_0, d_1, \dots, d_L)`, bottom (the data :math:`x = z_0`) first, and
fixed matrices :math:`A_i \in \mathbb{R}^{d_i \times d_{i+1}}` whose entries are i.i.d.
:math:`\mathcal N(0, 4 / d_{i+1})`, each sample is drawn top down:

.. math::

    z_L &\sim \mathcal N(0, I_{d_L}), \\
    z_i &= \tanh(A_i z_{i+1}) + \sigma \varepsilon_i, \qquad i = L-1, \dots, 1, \\
    x &= A_0 z_1 + \sigma_x \varepsilon_0,

with independent :math:`\varepsilon_i \sim \mathcal N(0, I_{d_i})`, :math:`\sigma` = ``noise``
and :math:`\sigma_x` = ``x_noise``. The scale :math:`2/\sqrt{d_{i+1}}` gives the pre-activations
a standard deviation of about 1 to 2, where tanh bends. The label is the orthant of the first
two coordinates of :math:`z_L`, :math:`y = [z_{L,1} > 0] + 2\,[z_{L,2} > 0]` (4 classes; 2 when
:math:`d_L = 1`), so probes of the top latent have something to predict. The default
``dims = (16, 8, 4, 2)`` is a three-latent hierarchy 2 -> 4 -> 8 -> 16.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from hierot.components import DataSplits
from hierot.registry import ComponentOptions, datasets

Dim = Annotated[int, Field(ge=1, le=2**16)]


class ToyHierarchyOptions(ComponentOptions):
    """Options of ``toy-hierarchy``."""

    n_train: int = Field(10_000, ge=1, le=10**8, description="training samples")
    n_test: int = Field(2_000, ge=1, le=10**8, description="test samples")
    dims: tuple[Dim, ...] = Field(
        (16, 8, 4, 2), min_length=2, description="d_0 (the data), d_1, ..., d_L (the top latent)"
    )
    noise: float = Field(0.1, ge=0, description="sigma, standard deviation of the latent noise")
    x_noise: float = Field(0.01, ge=0, description="sigma_x, standard deviation of the data noise")
    seed: int | None = Field(
        0, ge=0, lt=2**32, description="seed of the matrices and samples; null uses the run's seed"
    )

    def train_size(self) -> int:
        return self.n_train

    def sample_shape(self) -> tuple[int, ...]:
        return (self.dims[0],)


@dataclass(frozen=True)
class ToySample:
    """Samples of the toy hierarchy with everything that produced them (train rows first)."""

    x: Tensor
    """``(n, d_0)`` data."""
    latents: list[Tensor]
    """``z_1, ..., z_L``, each ``(n, d_i)``."""
    labels: Tensor
    """``(n,)`` int64 orthant of the top latent."""
    matrices: list[Tensor]
    """``A_0, ..., A_{L-1}``, ``A_i`` of shape ``(d_i, d_{i+1})``."""


def generate(options: ToyHierarchyOptions, *, seed: int) -> ToySample:
    """Draw the matrices, then ``n_train + n_test`` samples, from one generator.

    The generator is NumPy's legacy ``RandomState(options.seed)`` (``seed`` when that is null),
    whose stream is frozen across NumPy versions (a run seed is taken modulo 2**32); values are
    drawn in float64 and returned as float32.
    """
    rng = np.random.RandomState(seed % 2**32 if options.seed is None else options.seed)
    dims, n = options.dims, options.n_train + options.n_test
    matrices = [rng.randn(d, up) * (2 / np.sqrt(up)) for d, up in itertools.pairwise(dims)]
    z = top = rng.randn(n, dims[-1])
    latents = [z]
    for i in range(len(dims) - 2, 0, -1):
        z = np.tanh(z @ matrices[i].T) + options.noise * rng.randn(n, dims[i])
        latents.insert(0, z)
    x = z @ matrices[0].T + options.x_noise * rng.randn(n, dims[0])
    labels = (top[:, 0] > 0).astype(np.int64)
    if dims[-1] > 1:
        labels += 2 * (top[:, 1] > 0)

    def tensor(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.float32))

    return ToySample(
        tensor(x),
        [tensor(z) for z in latents],
        torch.from_numpy(labels),
        [tensor(a) for a in matrices],
    )


@datasets.register("toy-hierarchy", options=ToyHierarchyOptions)
def toy_hierarchy(options: ToyHierarchyOptions, *, seed: int) -> DataSplits:
    """Synthetic vectors from a known latent hierarchy (tanh links), labelled by the top orthant.

    See the module docstring for the generative process; :func:`generate` returns the latents
    and matrices too. The first ``n_train`` samples are the training set, the next ``n_test``
    the test set.

    Parameters
    ----------
    options:
        ``n_train``, ``n_test``, ``dims``, ``noise``, ``x_noise`` and ``seed``.
    seed:
        The run's seed, used only when ``options.seed`` is null.

    Returns
    -------
    DataSplits
        Vectors ``(n, d_0)`` float32 (not images), labels int64 in 0..3 (0..1 when d_L = 1).
    """
    sample = generate(options, seed=seed)
    k = options.n_train
    chain = " -> ".join(str(d) for d in reversed(options.dims))
    return DataSplits(
        train_x=sample.x[:k],
        test_x=sample.x[k:],
        train_y=sample.labels[:k],
        test_y=sample.labels[k:],
        description=f"toy-hierarchy: {k} train / {options.n_test} test vectors, dims {chain}",
        class_names=orthant_names(options.dims[-1]),
    )


def orthant_names(top_dims: int) -> tuple[str, ...]:
    """Names of the labels: the signs of the top latent's first (two) coordinates, ``(+, -)``."""
    if top_dims == 1:
        return ("z[0] < 0", "z[0] > 0")
    return tuple(f"({'+' if k & 1 else '-'}, {'+' if k & 2 else '-'})" for k in range(4))
