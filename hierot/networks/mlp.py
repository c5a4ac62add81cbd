"""Fully connected layer networks, as in the paper's MNIST model (Appendix B.1).

"For both the encoder and decoder, the mean and diagonal covariance functions are fully-connected
networks with 2 same-size hidden layers ... batch normalisation after each hidden fully-connected
layer, followed by a ReLU activation." The mean and the log-variance share the hidden layers and
have separate linear outputs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import Tensor, nn

from hierot.components import Head, Shape
from hierot.distributions import Gaussian
from hierot.networks._heads import GaussianHead, numel
from hierot.registry import ComponentOptions, networks

_ACTIVATIONS = {"relu": nn.ReLU, "leaky-relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLPOptions(ComponentOptions):
    """Options of ``mlp`` (:class:`MLP`)."""

    hidden: tuple[Annotated[int, Field(ge=1, le=2**16)], ...] = Field(
        (512, 512), description="widths of the hidden layers, each 1..65536"
    )
    batch_norm: bool = Field(True, description="BatchNorm after each hidden layer")
    activation: Literal["relu", "leaky-relu", "gelu", "tanh"] = "relu"
    output: Literal["identity", "sigmoid"] = Field(
        "identity", description="squash the mean into [0, 1] (pixel decoders)"
    )


@networks.register("mlp", options=MLPOptions)
class MLP(nn.Module):
    """Hidden linear layers (each followed by BatchNorm and ReLU) and a Gaussian head.

    Inputs of any shape are flattened; the output has the layer's latent shape.
    """

    def __init__(self, options: MLPOptions, *, in_shape: Shape, out_shape: Shape, head: Head):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = numel(in_shape)
        for hidden in options.hidden:
            layers.append(nn.Linear(width, hidden, bias=not options.batch_norm))
            if options.batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(_ACTIVATIONS[options.activation]())
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = GaussianHead(width, out_shape, head)
        self.squash = options.output == "sigmoid"

    def forward(self, x: Tensor) -> Gaussian:
        out = self.head(self.body(x))
        return Gaussian(out.mean.sigmoid(), out.log_var) if self.squash else out
