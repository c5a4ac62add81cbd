"""Convolutional residual layer networks, as in the paper's SVHN model (Appendix B.2, Figure 6a).

"A M-layer residual network is composed of M - 1 convolutional blocks followed by a resampling
convolution, and a residual connection. The outputs of the two are added and a last operation
(either fully connected or convolution layer) is applied on the result. A convolutional block is
composed of a convolution layer followed by batch normalisation and a ReLU non-linearity. We also
use batch normalisation and ReLU after the sum." When resampling, the resampling convolution and
the skip connection are stride-2 convolutions (inference networks, ``down``) or stride-2
transposed convolutions (generative models, ``up``), and the resampling convolution doubles
(``down``) or halves (``up``) the number of filters; without resampling it is a stride-1
convolution and the skip connection is the identity.

Two choices the paper leaves open: where the skip connection cannot be the identity without
resampling (the input has another number of channels than the residual branch), it is a 1x1
convolution; and a vector input ``(d,)`` is first mapped by a linear layer (with BatchNorm and
ReLU) to ``filters`` feature maps of the size the resampling needs to reach the output.

The mean and the log-variance share the residual body and have separate last operations.
Weights and feature maps are held in channels-last memory order by default (``channels_last``):
the values are the same, and a CPU training step of ``svhn-stackedwae.v1`` is 1.2-1.6x faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from hierot.components import Head, Shape
from hierot.distributions import Gaussian
from hierot.errors import HierotError
from hierot.networks._heads import GaussianHead
from hierot.registry import ComponentOptions, networks

Size = tuple[int, int]
Resample = Literal["down", "up", "none"]


def _resampled(size: Size, mode: Resample, target: Size | None = None) -> Size:
    """Spatial size after ``mode``: ``down`` halves (rounding up, as a stride-2 convolution with
    "same" padding does), ``up`` doubles (or gives ``2 h - 1`` where ``target`` asks for it)."""
    if mode == "down":
        return tuple((s + 1) // 2 for s in size)  # type: ignore[return-value]
    if mode == "up":
        if target is None:
            return tuple(2 * s for s in size)  # type: ignore[return-value]
        return tuple(t if t in (2 * s, 2 * s - 1) else 2 * s for s, t in zip(size, target))  # type: ignore[return-value]
    return size


def _before(size: Size, mode: Resample) -> Size:
    """A spatial size from which ``mode`` reaches ``size`` (for a vector input)."""
    if mode == "down":
        return tuple(2 * s for s in size)  # type: ignore[return-value]
    if mode == "up":
        return tuple((s + 1) // 2 for s in size)  # type: ignore[return-value]
    return size


def _fmt(size: Size) -> str:
    return "x".join(str(s) for s in size)


@dataclass(frozen=True)
class Plan:
    """How one ``resnet`` maps ``in_shape`` to ``out_shape``: every size, decided up front."""

    in_channels: int
    """Channels entering the residual body (``filters`` after the projection of a vector)."""
    body_size: Size
    """Spatial size entering the residual body."""
    project: int | None
    """Width of a vector input projected to ``filters`` x ``body_size`` maps, else ``None``."""
    resample: Resample
    width: int
    """Channels of the resampling convolution, the skip connection and the sum."""
    size: Size
    """Spatial size after resampling."""
    last: Literal["conv", "fc"]


class _PlanError(Exception):
    pass


class ResNetOptions(ComponentOptions):
    """Options of ``resnet``. Shapes are checked by :meth:`shape_error` before anything is built."""

    filters: int = Field(
        64, gt=0, le=2**16, description="filters of every convolution of the residual branch"
    )
    kernel_size: int = Field(3, gt=0, le=255,
                             description="odd size of every (transposed) convolution")
    blocks: int = Field(
        2, ge=1, le=1000,
        description="M: M - 1 convolutional blocks, then the resampling convolution",
    )
    resample: Literal["auto", "down", "up", "none"] = Field(
        "auto",
        description="stride-2 convolutions (down), transposed convolutions (up) or none; "
        "auto: from the spatial sizes of the input and output feature maps",
    )
    last: Literal["auto", "conv", "fc"] = Field(
        "auto",
        description="last operation: a convolution (output of the body's spatial size) or a fully "
        "connected layer (any output); auto: conv for a feature-map output, fc for a vector",
    )
    output: Literal["identity", "sigmoid"] = Field(
        "identity", description="squash the mean into [0, 1] (pixel decoders)"
    )
    channels_last: bool = Field(
        True,
        description="hold weights and feature maps in channels-last memory order (same values; "
        "faster convolutions on CPU, see benchmarks/train_step.py)",
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(
                f"must be odd (got {value}) so that a stride-1 convolution keeps the size"
            )
        return value

    def plan(self, in_shape: Shape, out_shape: Shape) -> Plan:
        """Every size of the network mapping ``in_shape`` to ``out_shape``.

        Raises
        ------
        HierotError
            If these options cannot map the shapes (the message names both).
        """
        try:
            return self._plan(tuple(in_shape), tuple(out_shape))
        except _PlanError as exc:
            raise HierotError(
                f"resnet cannot map {tuple(in_shape)} to {tuple(out_shape)}: {exc}"
            ) from None

    def shape_error(self, in_shape: Shape, out_shape: Shape) -> str | None:
        """Why these options cannot map ``in_shape`` to ``out_shape``, or ``None`` if they can."""
        try:
            self._plan(tuple(in_shape), tuple(out_shape))
        except _PlanError as exc:
            return f"resnet: {exc}"
        return None

    def _plan(self, in_shape: Shape, out_shape: Shape) -> Plan:
        for role, shape in (("input", in_shape), ("output", out_shape)):
            if len(shape) not in (1, 3):
                raise _PlanError(
                    f"the {role} {shape} is neither a vector (d,) nor a feature map (C, H, W)"
                )
        in_map, out_map = len(in_shape) == 3, len(out_shape) == 3
        if not (in_map or out_map):
            raise _PlanError(
                f"{in_shape} -> {out_shape} maps a vector to a vector; use mlp, or a feature-map "
                "latent on one side"
            )
        last = self.last if self.last != "auto" else ("conv" if out_map else "fc")
        if last == "conv" and not out_map:
            raise _PlanError(f"last: conv cannot output the vector {out_shape}; use last: fc")
        out_size: Size | None = tuple(out_shape[1:]) if out_map else None  # type: ignore[assignment]

        if in_map:
            in_size: Size = tuple(in_shape[1:])  # type: ignore[assignment]
            mode = self.resample
            if mode == "auto":
                mode = self._infer(in_size, out_size) if out_size is not None else "none"
            size = _resampled(in_size, mode, out_size)
            if last == "conv" and size != out_size:
                raise _PlanError(
                    f"resample: {mode} takes the input's {_fmt(in_size)} maps to {_fmt(size)}, "
                    f"not the output's {_fmt(out_size)}"  # type: ignore[arg-type]
                )
            in_channels, project, body_size = in_shape[0], None, in_size
        else:
            mode = "none" if self.resample == "auto" else self.resample
            body_size = _before(out_size, mode)  # type: ignore[arg-type]
            size = _resampled(body_size, mode, out_size)
            in_channels, project = self.filters, in_shape[0]

        width = {"down": 2 * self.filters, "up": self.filters // 2, "none": self.filters}[mode]
        if width == 0:
            raise _PlanError("filters: 1 cannot be halved by the up-sampling convolution")
        return Plan(in_channels, body_size, project, mode, width, size, last)  # type: ignore[arg-type]

    @staticmethod
    def _infer(in_size: Size, out_size: Size) -> Resample:
        if in_size == out_size:
            return "none"
        for mode in ("down", "up"):
            if _resampled(in_size, mode, out_size) == out_size:
                return mode  # type: ignore[return-value]
        raise _PlanError(
            f"the spatial size {_fmt(in_size)} -> {_fmt(out_size)} is not a resampling by 1 or 2 "
            f"(down gives {_fmt(_resampled(in_size, 'down'))}, up gives "
            f"{_fmt(_resampled(in_size, 'up'))}); with last: fc, choose resample explicitly"
        )


def _conv_block(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def _resampling(
    in_channels: int, out_channels: int, k: int, mode: Resample, in_size: Size, out_size: Size
) -> nn.Module:
    """A stride-2 convolution, a stride-2 transposed convolution, or a stride-1 convolution."""
    if mode == "down":
        return nn.Conv2d(in_channels, out_channels, k, stride=2, padding=k // 2, bias=False)
    if mode == "up":
        # (h - 1) * 2 - 2 (k // 2) + k + output_padding = 2 h - 1 + output_padding
        extra = (out_size[0] - (2 * in_size[0] - 1), out_size[1] - (2 * in_size[1] - 1))
        return nn.ConvTranspose2d(
            in_channels, out_channels, k, stride=2, padding=k // 2, output_padding=extra, bias=False
        )
    return nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=False)


class Residual(nn.Module):
    """Figure 6a: (M - 1 conv blocks, then a resampling convolution) + skip, BatchNorm, ReLU."""

    def __init__(self, options: ResNetOptions, plan: Plan):
        super().__init__()
        k, filters = options.kernel_size, options.filters
        layers: list[nn.Module] = []
        channels = plan.in_channels
        for _ in range(options.blocks - 1):
            layers.append(_conv_block(channels, filters, k))
            channels = filters
        layers.append(
            _resampling(channels, plan.width, k, plan.resample, plan.body_size, plan.size)
        )
        self.branch = nn.Sequential(*layers)
        if plan.resample != "none":
            self.skip = _resampling(
                plan.in_channels, plan.width, k, plan.resample, plan.body_size, plan.size
            )
        elif plan.in_channels != plan.width:
            self.skip = nn.Conv2d(plan.in_channels, plan.width, 1, bias=False)
        else:
            self.skip = nn.Identity()
        self.after = nn.Sequential(nn.BatchNorm2d(plan.width), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.after(self.branch(x) + self.skip(x))


class ConvHead(nn.Module):
    """Last operation as a convolution: one for the mean, one for the log-variance."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, head: Head):
        super().__init__()
        pad = kernel_size // 2
        self.mean = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad)
        self.log_var = (
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad)
            if head == "gaussian"
            else None
        )

    def forward(self, features: Tensor) -> Gaussian:
        if self.log_var is None:
            return Gaussian(self.mean(features))
        return Gaussian(self.mean(features), self.log_var(features))


@networks.register("resnet", options=ResNetOptions)
class ResNet(nn.Module):
    """Residual convolutional network (Figure 6a) with a Gaussian or deterministic head.

    Maps feature maps ``(C, H, W)`` to feature maps, halving (``down``), doubling (``up``) or
    keeping the spatial size; a vector on either side is handled by a linear input projection or
    a fully connected last operation (``last: fc``).
    """

    def __init__(self, options: ResNetOptions, *, in_shape: Shape, out_shape: Shape, head: Head):
        super().__init__()
        plan = options.plan(in_shape, out_shape)
        self.plan = plan
        self.project: nn.Module | None = None
        if plan.project is not None:
            maps = math.prod(plan.body_size)
            self.project = nn.Sequential(
                nn.Linear(plan.project, options.filters * maps, bias=False),
                nn.BatchNorm1d(options.filters * maps),
                nn.ReLU(),
                nn.Unflatten(1, (options.filters, *plan.body_size)),
            )
        self.body = Residual(options, plan)
        if plan.last == "conv":
            self.head: nn.Module = ConvHead(plan.width, out_shape[0], options.kernel_size, head)
        else:
            self.head = nn.Sequential(
                nn.Flatten(), GaussianHead(plan.width * math.prod(plan.size), out_shape, head)
            )
        self.squash = options.output == "sigmoid"
        self.memory_format = (
            torch.channels_last if options.channels_last else torch.contiguous_format
        )
        self.to(memory_format=self.memory_format)  # the convolution weights

    def forward(self, x: Tensor) -> Gaussian:
        if self.project is not None:
            x = self.project(x)
        out = self.head(self.body(x.contiguous(memory_format=self.memory_format)))
        return Gaussian(out.mean.sigmoid(), out.log_var) if self.squash else out
