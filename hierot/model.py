"""The Markovian hierarchy of Eq. (1) with the Markovian encoder of Eq. (2).

Generative model p(x|z_1) p(z_1|z_2) ... p(z_{N-1}|z_N) p(z_N), p(z_N) = N(0, I);
inference model q(z_1|x) q(z_2|z_1) ... q(z_N|z_{N-1}). Layer i owns the encoder
q(z_i | z_{i-1}) and the decoder p(z_{i-1} | z_i) (z_0 = x), both networks from the registry.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hierot.components import Shape
from hierot.distributions import Gaussian


class Hierarchy(nn.Module):
    """Encoders and decoders of an N-layer hierarchy.

    Parameters
    ----------
    encoders, decoders:
        ``encoders[i]`` is q(z_{i+1} | z_i) and ``decoders[i]`` is p(z_i | z_{i+1}), i = 0..N-1,
        with z_0 = x; each maps a batch to a :class:`~hierot.distributions.Gaussian`.
    data_shape, latent_shapes:
        Shape of one data point and of each z_i, bottom first.
    """

    def __init__(
        self,
        encoders: Sequence[nn.Module],
        decoders: Sequence[nn.Module],
        data_shape: Shape,
        latent_shapes: Sequence[Shape],
    ):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.data_shape = tuple(data_shape)
        self.latent_shapes = [tuple(s) for s in latent_shapes]

    @property
    def depth(self) -> int:
        return len(self.encoders)

    def encode(
        self, x: Tensor, depth: int | None = None, sample: bool = True
    ) -> tuple[list[Gaussian], list[Tensor]]:
        """Run the encoder chain up to z_depth (default: the top).

        Returns the encodings q(z_i | z_{i-1}) and the codes z_1..z_depth: reparameterised
        samples when ``sample``, the means otherwise.
        """
        encodings, codes, z = [], [], x
        for encoder in self.encoders[: self.depth if depth is None else depth]:
            q = encoder(z)
            z = q.sample_or_mean(sample)
            encodings.append(q)
            codes.append(z)
        return encodings, codes

    def decode(self, z: Tensor, layer: int, sample: bool = False) -> Tensor:
        """Decode z_layer down to x through p(z_{layer-1}|z_layer) ... p(x|z_1).

        Uses the decoders' means unless ``sample``, and returns the mean of p(x | z_1).
        """
        for decoder in reversed(self.decoders[:layer]):
            z = decoder(z).sample_or_mean(sample)
        return z

    def prior_sample(self, n: int, *, device=None, dtype=None) -> Tensor:
        """n draws of z_N ~ N(0, I)."""
        ref = next(self.parameters())
        return torch.randn(
            (n, *self.latent_shapes[-1]), device=device or ref.device, dtype=dtype or ref.dtype
        )

    def ancestral_sample(self, n: int, down_to: int = 0) -> Tensor:
        """z_{down_to} by ancestral sampling from the prior, reparameterised (differentiable).

        ``down_to=1`` draws from the implicit prior p_{Theta_{2:N}}(z_1) of Eq. (6) used by the
        flat WAE; ``down_to=0`` generates data (the mean of the bottom decoder).
        """
        z = self.prior_sample(n)
        for layer in range(self.depth, down_to, -1):
            decoded = self.decoders[layer - 1](z)
            z = decoded.mean if layer == 1 else decoded.rsample()
        return z

    @torch.no_grad()
    def generate(self, n: int) -> Tensor:
        """n samples of x from the generative model (the mean of p(x | z_1) for the last step)."""
        return self.ancestral_sample(n, down_to=0)

__all__ = ["Hierarchy"]
