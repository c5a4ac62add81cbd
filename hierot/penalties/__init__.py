"""Built-in variance penalties; importing this package registers them.

The paper (Section 3.2, after Rubenstein et al. 2018) adds to Eq. (10) a log-variance penalty that
keeps the encoders from collapsing to deterministic maps in high-dimensional latents, Eq. (12):

.. math:: \\mathcal L_\\text{pen} = \\sum_{i=1}^N \\lambda_i^\\Sigma
    \\sum_{m=1}^{d_{Z_i}} |\\log \\Sigma_i^q[m]|

averaged over the batch. The per-layer weights are explicit, or geometric:
lambda_i = first * ratio^(i-1), whose defaults (1e-3, 0.1) are the paper's 10^-(2+i).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.components import LayerOutputs
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, penalties


class LogVarianceOptions(ComponentOptions):
    """Options of the log-variance penalties: lambda_i per layer
    (:class:`~hierot.components.WeighsLayers`)."""

    weights: tuple[float, ...] | None = Field(
        None, description="lambda_i per latent layer (one per layer); overrides first/ratio"
    )
    first: float = Field(1e-3, ge=0, description="lambda_1 of the geometric schedule")
    ratio: float = Field(0.1, ge=0, description="lambda_{i+1} / lambda_i of the geometric schedule")
    on: Literal["encoder", "decoder", "both"] = Field(
        "encoder", description="which variances: q(z_i|z_{i-1}), p(z_{i-1}|z_i) or both"
    )

    def layer_weights(self, num_layers: int) -> list[float]:
        if self.weights is None:
            try:
                return [self.first * self.ratio**i for i in range(num_layers)]
            except OverflowError:  # float ** int raises where float * float would give inf
                raise HierotError(
                    f"ratio: first * ratio^{num_layers - 1} = {self.first} * {self.ratio}^"
                    f"{num_layers - 1} overflows a float; choose a smaller ratio"
                ) from None
        if len(self.weights) != num_layers:
            raise HierotError(
                f"weights: {len(self.weights)} values given for {num_layers} latent layers"
            )
        return list(self.weights)


class _LogVariancePenalty:
    """sum_i lambda_i sum_m f(log Sigma_i[m]), batch-averaged, for an elementwise f."""

    def __init__(self, options: LogVarianceOptions, *, num_layers: int):
        self.weights = options.layer_weights(num_layers)
        self.on = options.on

    @staticmethod
    def elementwise(log_var: Tensor) -> Tensor:
        raise NotImplementedError

    def _layer_term(self, gaussians: list, i: int) -> Tensor | float:
        if i >= len(gaussians) or gaussians[i].log_var is None:
            return 0.0  # layer not evaluated, or deterministic: nothing to keep from collapsing
        return self.elementwise(gaussians[i].log_var).flatten(1).sum(1).mean()

    def __call__(self, outputs: LayerOutputs) -> Tensor:
        """Unweighted per-layer values sum_m f(log Sigma_i[m]), shape ``(num_layers,)``.

        ``decodings[i]`` is p(z_i | z_{i+1}), the decoder of latent layer i + 1.
        """
        anchor = outputs.encodings[0].mean
        values = []
        for i in range(len(self.weights)):
            value: Tensor | float = 0.0
            if self.on in ("encoder", "both"):
                value = value + self._layer_term(list(outputs.encodings), i)
            if self.on in ("decoder", "both"):
                value = value + self._layer_term(list(outputs.decodings), i)
            values.append(torch.as_tensor(value, dtype=anchor.dtype, device=anchor.device))
        return torch.stack(values)


@penalties.register("abs-log-var", options=LogVarianceOptions)
class AbsLogVariance(_LogVariancePenalty):
    r"""Eq. (12): :math:`\sum_i \lambda_i^\Sigma \sum_m |\log \Sigma_i[m]|` (Rubenstein et al.,
    2018)."""

    @staticmethod
    def elementwise(log_var: Tensor) -> Tensor:
        return log_var.abs()


@penalties.register("sq-log-var", options=LogVarianceOptions)
class SquaredLogVariance(_LogVariancePenalty):
    r""":math:`\sum_i \lambda_i \sum_m (\log \Sigma_i[m])^2`: a smooth variant of Eq. (12).

    Its gradient vanishes as the variance approaches 1, so it pulls gently near the optimum and
    hard against collapse (log Sigma -> -inf), where the absolute value pulls at a constant rate.
    """

    @staticmethod
    def elementwise(log_var: Tensor) -> Tensor:
        return log_var.square()

__all__ = ["AbsLogVariance", "LogVarianceOptions", "SquaredLogVariance"]
