"""Time of one training step of a preset built by hierot, against a plain PyTorch loop.

For each case (preset, batch size, variant) the preset is loaded with ``hierot.load_spec`` and
built with ``hierot.build`` on random data of the preset's data shape (uniform in [0, 1]); the
hierot step is :class:`hierot.trainer.Trainer`'s own step (batch gather, objective under the
spec's precision, finite check, backward, Adam). A variant is a set of spec overrides
(:data:`VARIANTS`): ``fp32`` (the preset as it is: fused Adam where the device has it),
``fp32-for-loop`` (``optimizer.implementation: for-loop``, torch's reference Adam), ``bf16``
(``train.precision: bf16``), ``compile`` (``train.compile: true``; the time of the first steps,
which compile, is reported apart). The plain loop is the same networks written directly in ``torch.nn`` (same layer sizes, same
parameter order) and the same loss, Eq. (10), computed inline, with the default ``torch.optim.Adam`` (the loop a
user would write, in fp32): reparameterised encodings,
closed-form squared-Euclidean reconstruction terms with the preset's weights, an inline
IMQ-MMD (the WAE's seven bandwidths, U-statistic) on the top latent and the preset's
abs-log-variance penalty. Before timing, the plain networks get a copy of hierot's parameters and
both losses are checked to agree on one batch under the same random seed.

Each case warms up, then times hierot and plain steps alternately (so that drift in the machine
hits both alike; CUDA synchronised), and reports medians, the ratio hierot / plain of the medians
and the median of the per-pair ratios (steadier on a busy machine; the target is within 5 %),
the model's FLOPs per step (forward + backward, counted with
``torch.utils.flop_counter.FlopCounterMode``) and the achieved GFLOP/s against a large
matrix product measured on the same machine. Convolutional presets are timed in both memory
orders of their ``resnet`` layers (``channels_last: true``, the default, and ``false``), the plain
networks following the same order.

    python benchmarks/train_step.py --quick     # fewer repeats; or python -m benchmarks train_step
    python benchmarks/train_step.py             # mnist-stackedwae.v1 @ 128, 512; svhn @ 100
    python benchmarks/train_step.py --case quickstart-conv:100 --threads 1
    python benchmarks/train_step.py --case mnist-stackedwae.v1:128 --variant fp32 --variant bf16 \
        --profile            # adds the top operators of a torch.profiler trace of each step

Writes ``benchmarks/results/train_step/<mode>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

import hierot
from hierot.components import DataSplits
from hierot.loading import dump_spec
from hierot.rundir import environment
from hierot.runtime import single_process
from hierot.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "train_step"
CASES = (("mnist-stackedwae.v1", 128), ("mnist-stackedwae.v1", 512), ("svhn-stackedwae.v1", 100))
FALLBACK_SHAPES = {
    "mnist": (1, 28, 28),
    "mnist-5k": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "svhn": (3, 32, 32),
}
FORMAT = {None: "-", True: "channels_last", False: "contiguous"}
VARIANTS = {
    "fp32": [],
    "fp32-for-loop": ["optimizer.implementation=for-loop"],
    "fp32-foreach": ["optimizer.implementation=foreach"],
    "bf16": ["train.precision=bf16"],
    "fp16": ["train.precision=fp16"],
    "compile": ["train.compile=true"],
    "bf16-compile": ["train.precision=bf16", "train.compile=true"],
}
DEFAULT_VARIANTS = ("fp32", "fp32-for-loop", "bf16")
WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


# -- the plain networks, written directly in torch ---------------------------------------------
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


# -- the plain loss: Eq. (10) inline -------------------------------------------------------------
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


# -- one case ------------------------------------------------------------------------------------
def data_shape(spec) -> tuple[int, ...]:
    shape = getattr(spec.data, "sample_shape", lambda: None)()
    return tuple(shape) if shape is not None else FALLBACK_SHAPES[spec.data.name]


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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_data_trainer(
    preset: str, batch: int, device: torch.device, overrides: list[str] | tuple[str, ...] = ()
) -> Trainer:
    """The preset built by hierot on ``8 * batch`` uniform random training examples of its data
    shape (and one batch of test examples), in a single-process Trainer."""
    overrides = [f"train.batch_size={batch}", "train.progress=false", f"device={device.type}",
                 *overrides]
    spec = hierot.load_spec(preset, overrides)
    shape = data_shape(spec)
    gen = torch.Generator().manual_seed(0)
    n = batch * 8
    data = DataSplits(
        torch.rand(n, *shape, generator=gen), torch.rand(batch, *shape, generator=gen)
    )
    return Trainer(hierot.build(spec, data=data), None, single_process(device.type))


def plain_optimizer(spec, parameters) -> torch.optim.Optimizer:
    """The default ``torch.optim.Adam`` of the preset's options (torch's own kernel choice)."""
    o = spec.optimizer
    if o.name != "adam":
        raise SystemExit(f"the plain loop covers Adam only, not {o.name}")
    return torch.optim.Adam(parameters, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def profile_table(step, rows: int = 12) -> str:
    """The operators taking the most self CPU time over three steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def run_case(
    preset: str, batch: int, device: torch.device, args, channels_last: bool | None,
    variant: str = "fp32",
) -> dict:
    """Time one preset at one batch size (``channels_last``: the resnet layers' memory order)
    in one variant (:data:`VARIANTS`) against the plain default loop."""
    overrides = list(VARIANTS[variant])
    for i, layer in enumerate(hierot.load_spec(preset).layers):
        for role in ("encoder", "decoder"):
            if getattr(layer, role).name == "resnet" and channels_last is not None:
                overrides.append(f"layers.{i}.{role}.channels_last={str(channels_last).lower()}")
    trainer = random_data_trainer(preset, batch, device, overrides)
    built, spec = trainer.built, trainer.spec
    shape = data_shape(spec)
    n = len(built.data.train_x)
    plain = PlainModel(spec, shape).to(device)
    copy_parameters(built.model, plain)
    train_x = trainer.train_x
    rec_w, match_w = spec.resolved_weights()
    pen_w = penalty_weights(spec)
    optimizer = plain_optimizer(spec, plain.parameters())

    # the two losses agree on one batch under the same seed (in fp32; compiles a compiled model)
    x = train_x[:batch]
    torch.manual_seed(1)
    t0 = time.perf_counter()
    ours = built.objective(x).total.detach()
    first_forward_s = time.perf_counter() - t0
    torch.manual_seed(1)
    theirs = plain_loss(plain, x, rec_w, match_w, pen_w).detach()
    agree = abs(float(ours) - float(theirs)) <= 1e-4 * max(1.0, abs(float(theirs)))
    if not agree:
        raise SystemExit(f"{preset}: hierot loss {float(ours)} != plain loss {float(theirs)}")

    perm = torch.randperm(n, device=device)

    def plain_step(i: int) -> None:
        start = (i * batch) % (n - batch + 1)
        xb = train_x[perm[start : start + batch]]
        loss = plain_loss(plain, xb, rec_w, match_w, pen_w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(fn) -> float:
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - t0

    warmup_s = []
    for i in range(args.warmup):
        warmup_s.append(timed(trainer._train_step))
        plain_step(i)
    ours_t, plain_t = [], []
    for i in range(args.repeats):
        # alternate which goes first, so neither always follows the other
        if i % 2 == 0:
            ours_t.append(timed(trainer._train_step))
            plain_t.append(timed(lambda: plain_step(i)))
        else:
            plain_t.append(timed(lambda: plain_step(i)))
            ours_t.append(timed(trainer._train_step))

    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer._train_step()
    flops = counter.get_total_flops()
    hierot_s, plain_s = statistics.median(ours_t), statistics.median(plain_t)
    paired = sorted(a / b for a, b in zip(ours_t, plain_t))
    profiles = {}
    if args.profile:
        profiles = {"hierot": profile_table(trainer._train_step),
                    "plain": profile_table(lambda: plain_step(0))}
    return {
        "preset": preset,
        "batch": batch,
        "variant": variant,
        "overrides": VARIANTS[variant],
        "channels_last": channels_last,
        "parameters": sum(p.numel() for p in built.model.parameters()),
        "loss_hierot": float(ours),
        "loss_plain": float(theirs),
        "hierot_median_s": hierot_s,
        "plain_median_s": plain_s,
        "ratio": hierot_s / plain_s,
        "paired_ratio": statistics.median(paired),
        "paired_ratio_quartiles": [paired[len(paired) // 4], paired[(3 * len(paired)) // 4]],
        "first_forward_s": first_forward_s,
        "warmup_times_s": warmup_s,
        "profiles": profiles,
        "hierot_times_s": ours_t,
        "plain_times_s": plain_t,
        "flops_per_step": flops,
        "gflops_per_s": flops / hierot_s / 1e9,
        "spec": dump_spec(spec),
    }


def matmul_gflops(device: torch.device, size: int, repeats: int) -> float:
    """Achieved GFLOP/s of a float32 ``size`` x ``size`` matrix product (median)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


# -- driver ----------------------------------------------------------------------------------------
def machine_info(device: torch.device) -> dict:
    """Versions, plug-ins and machine (:func:`hierot.rundir.environment`), device, load."""
    return {
        **environment(),
        "processor": platform.processor() or platform.machine(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average_at_start": os.getloadavg(),
    }


def markdown(report: dict) -> str:
    info = report["machine"]
    lines = [
        f"# Training-step benchmark ({report['mode']}, {info['device']})",
        "",
        f"{report['created']}; median of {report['repeats']} steps after {report['warmup']} "
        f"warm-up, hierot and plain alternating. hierot: `Trainer` step of the preset built by "
        f"`hierot.build`; plain: the same networks and Eq. (10) loss written directly in torch.",
        f"Machine: {info['processor']}, {info['cpu_count']} CPUs ({info['torch_threads']} torch "
        f"threads), GPU: {info['gpu'] or 'none'}; python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
        + f"; 1-minute load average {info['load_average_at_start'][0]:.1f} at the start, "
        f"{info['load_average_at_end'][0]:.1f} at the end.",
        f"Float32 matrix product ({report['matmul_size']}^2): "
        f"{report['matmul_gflops']:.1f} GFLOP/s.",
        "",
        "| preset | batch | variant | memory format | hierot ms | plain ms | hierot / plain "
        "| paired ratio (quartiles) | first step s | GFLOP per step | GFLOP/s | % of matmul |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        q = r.get("paired_ratio_quartiles", [float("nan")] * 2)
        first = r.get("first_forward_s", 0.0) + (r.get("warmup_times_s") or [0.0])[0]
        lines.append(
            f"| {r['preset']} | {r['batch']} | {r.get('variant', 'fp32')} "
            f"| {FORMAT[r['channels_last']]} "
            f"| {1e3 * r['hierot_median_s']:.1f} | {1e3 * r['plain_median_s']:.1f} "
            f"| {r['ratio']:.3f} | {r['paired_ratio']:.3f} ({q[0]:.3f}-{q[1]:.3f}) | {first:.2f} "
            f"| {r['flops_per_step'] / 1e9:.2f} | {r['gflops_per_s']:.1f} "
            f"| {100 * r['gflops_per_s'] / report['matmul_gflops']:.0f} |"
        )
    lines += [
        "",
        "FLOPs: forward + backward of the model and loss (FlopCounterMode; the optimiser "
        "update is not counted). Plain: the default `torch.optim.Adam` in fp32. First step: the "
        "first forward (the loss check) plus the first training step, compilation included.",
    ]
    for r in report["results"]:
        for who, table in r.get("profiles", {}).items():
            lines += ["", f"### Profile: {who}, {r['preset']} batch {r['batch']} "
                      f"({r.get('variant', 'fp32')}), 3 steps", "", "```", table.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer warm-up steps and repeats")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument(
        "--case",
        action="append",
        metavar="PRESET:BATCH",
        help="a preset and batch size (repeatable; default: the paper's presets)",
    )
    parser.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="memory order of resnet layers; auto: time convolutional presets in both",
    )
    parser.add_argument(
        "--variant", action="append", choices=list(VARIANTS),
        help=f"hierot variant to time (repeatable; default: {', '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--profile", action="store_true",
                        help="add a torch.profiler table of 3 steps of each variant and the plain loop")
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's; 1 is steadier on a busy machine)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mode = "quick" if args.quick else "full"
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    args.repeats = args.repeats or (5 if args.quick else 31)
    cases = (
        [(c.rsplit(":", 1)[0], int(c.rsplit(":", 1)[1])) for c in args.case] if args.case else CASES
    )
    matmul_size = 4096 if device.type == "cuda" else 2048
    report = {
        "mode": mode,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/train_step.py", *sys.argv[1:]]),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "machine": machine_info(device),
        "matmul_size": matmul_size,
        "matmul_gflops": matmul_gflops(device, matmul_size, 5 if args.quick else 11),
        "results": [],
    }
    print(f"matmul {matmul_size}^2: {report['matmul_gflops']:.1f} GFLOP/s", flush=True)
    for preset, batch in cases:
        conv = any(layer.encoder.name == "resnet" for layer in hierot.load_spec(preset).layers)
        formats = (
            {"on": [True], "off": [False], "auto": [False, True]}
            if conv
            else {args.channels_last: [None]}
        )
        for channels_last, variant in [(c, v) for c in formats[args.channels_last]
                                       for v in (args.variant or DEFAULT_VARIANTS)]:
            r = run_case(preset, batch, device, args, channels_last, variant)
            report["results"].append(r)
            print(
                f"{preset:<22} batch {batch:<4} {variant:<13} {FORMAT[channels_last]:<13} "
                f"hierot {1e3 * r['hierot_median_s']:8.1f} ms  "
                f"plain {1e3 * r['plain_median_s']:8.1f} ms  "
                f"ratio {r['ratio']:.3f} (paired {r['paired_ratio']:.3f})  "
                f"{r['gflops_per_s']:.1f} GFLOP/s",
                flush=True,
            )
    report["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{mode}-{device.type}{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
