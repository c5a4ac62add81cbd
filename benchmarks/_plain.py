"""The plain PyTorch baseline of ``train_step``: hierot's networks and Eq. (10) written directly.

The same layer sizes and parameter order as hierot's ``mlp`` and ``resnet`` (so parameters copy
across one to one), and the StackedWAE loss computed inline: reparameterised encodings,
closed-form squared-Euclidean reconstruction terms, an inline IMQ-MMD (the WAE's seven
bandwidths, U-statistic) on the top latent and the abs-log-variance encoder penalty.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class PlainMLP(nn.Module):
    """Flatten, (Linear without bias, BatchNorm1d, ReLU) per hidden width, linear mean/log-var."""

    def __init__(self, in_shape, out_shape, hidden, gaussian: bool, sigmoid: bool):
        super().__init__()
        layers, width = [nn.Flatten()], math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(width, math.prod(out_shape))
        self.log_var = nn.Linear(width, math.prod(out_shape)) if gaussian else None
        self.out_shape, self.sigmoid = tuple(out_shape), sigmoid

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        h = self.body(x)
        mean = self.mean(h).view(-1, *self.out_shape)
        mean = mean.sigmoid() if self.sigmoid else mean
        return mean, None if self.log_var is None else self.log_var(h).view(-1, *self.out_shape)


class PlainResNet(nn.Module):
    """Figure 6a on feature maps: conv blocks, resampling conv + skip, BN, ReLU, conv heads."""

    def __init__(
        self,
        in_shape,
        out_shape,
        filters,
        kernel,
        blocks,
        gaussian: bool,
        sigmoid: bool,
        channels_last: bool,
    ):
        super().__init__()
        (c_in, h_in, _), (c_out, h_out, _) = in_shape, out_shape
        mode = "none" if h_in == h_out else ("down" if h_out < h_in else "up")
        width = {"down": 2 * filters, "up": filters // 2, "none": filters}[mode]
        p, layers, c = kernel // 2, [], c_in
        for _ in range(blocks - 1):
            layers += [
                nn.Conv2d(c, filters, kernel, padding=p, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(),
            ]
            c = filters
        extra = h_out - (2 * h_in - 1)  # output padding of the transposed convolutions
        if mode == "down":
            layers.append(nn.Conv2d(c, width, kernel, stride=2, padding=p, bias=False))
            skip = nn.Conv2d(c_in, width, kernel, stride=2, padding=p, bias=False)
        elif mode == "up":
            layers.append(
                nn.ConvTranspose2d(c, width, kernel, 2, p, output_padding=extra, bias=False)
            )
            skip = nn.ConvTranspose2d(c_in, width, kernel, 2, p, output_padding=extra, bias=False)
        else:
            layers.append(nn.Conv2d(c, width, kernel, padding=p, bias=False))
            skip = nn.Identity() if c_in == width else nn.Conv2d(c_in, width, 1, bias=False)
        self.branch = nn.Sequential(*layers)
        self.skip = skip
        self.bn = nn.BatchNorm2d(width)
        self.mean = nn.Conv2d(width, c_out, kernel, padding=p)
        self.log_var = nn.Conv2d(width, c_out, kernel, padding=p) if gaussian else None
        self.sigmoid = sigmoid
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        x = x.contiguous(memory_format=self.memory_format)
        h = torch.relu(self.bn(self.branch(x) + self.skip(x)))
        mean = self.mean(h)
        mean = mean.sigmoid() if self.sigmoid else mean
        return mean, None if self.log_var is None else self.log_var(h)


def plain_network(options, in_shape, out_shape, head: str) -> nn.Module:
    gaussian, sigmoid = head == "gaussian", options.output == "sigmoid"
    if options.name == "mlp":
        return PlainMLP(in_shape, out_shape, options.hidden, gaussian, sigmoid)
    if options.name == "resnet":
        if len(in_shape) != 3 or len(out_shape) != 3:
            raise SystemExit("the plain resnet covers feature map -> feature map layers only")
        return PlainResNet(
            in_shape,
            out_shape,
            options.filters,
            options.kernel_size,
            options.blocks,
            gaussian,
            sigmoid,
            options.channels_last,
        )
    raise SystemExit(f"no plain version of network {options.name!r}")


class PlainModel(nn.Module):
    def __init__(self, spec, data_shape):
        super().__init__()
        shapes = [tuple(data_shape)] + [tuple(layer.latent_shape) for layer in spec.layers]
        self.encoders = nn.ModuleList(
            plain_network(layer.encoder, shapes[i], shapes[i + 1], layer.encoder_head)
            for i, layer in enumerate(spec.layers)
        )
        self.decoders = nn.ModuleList(
            plain_network(layer.decoder, shapes[i + 1], shapes[i], layer.decoder_head)
            for i, layer in enumerate(spec.layers)
        )


def plain_loss(model: PlainModel, x: Tensor, rec_w, match_w, pen_w) -> Tensor:
    z, codes, enc_log_vars = x, [], []
    for encoder in model.encoders:
        mean, log_var = encoder(z)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        codes.append(z)
        enc_log_vars.append(log_var)
    loss = 0.0
    for n, (target, decoder) in enumerate(zip([x, *codes[:-1]], model.decoders)):
        mean, log_var = decoder(codes[n])
        cost = (target - mean).square().flatten(1).sum(1)
        if log_var is not None:
            cost = cost + log_var.exp().flatten(1).sum(1)
        loss = loss + rec_w[n] * cost.mean()
    # inline IMQ-MMD (U-statistic) between the top codes and N(0, I)
    top = codes[-1].flatten(1)
    prior = torch.randn_like(top)
    n, d = top.shape
    both = torch.cat([top, prior])
    sq = (both * both).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2.0 * both @ both.T).clamp_min(0.0)
    gram = sum(c / (c + dist) for c in (2.0 * d * s for s in WAE_SCALES))
    off = 1.0 - torch.eye(n, dtype=x.dtype, device=x.device)
    mmd = ((gram[:n, :n] * off).sum() + (gram[n:, n:] * off).sum()) / (n * (n - 1)) - 2 * gram[
        :n, n:
    ].mean()
    loss = loss + match_w * mmd
    for w, log_var in zip(pen_w, enc_log_vars):
        loss = loss + w * log_var.abs().flatten(1).sum(1).mean()
    return loss


def penalty_weights(spec) -> list[float]:
    weights = [0.0] * len(spec.layers)
    for p in spec.penalties:
        if p.name != "abs-log-var" or p.on != "encoder":
            raise SystemExit(f"the plain loop covers the abs-log-var encoder penalty only, not {p}")
        weights = [a + b for a, b in zip(weights, p.layer_weights(len(spec.layers)))]
    return weights


def copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """Copy parameters and buffers in registration order (the plain networks mirror hierot's)."""
    pairs = [
        (list(source.parameters()), list(target.parameters())),
        (list(source.buffers()), list(target.buffers())),
    ]
    for src, dst in pairs:
        if [t.shape for t in src] != [t.shape for t in dst]:
            raise SystemExit("plain and hierot networks differ in their parameter shapes")
        with torch.no_grad():
            for s, t in zip(src, dst):
                t.copy_(s)
