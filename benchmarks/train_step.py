"""Time of one training step of a preset built by hierot, against a plain PyTorch loop.

For each case (preset, batch size, variant) the preset is loaded with ``hierot.load_spec`` and
built with ``hierot.build`` on random data of the preset's data shape (uniform in [0, 1]); the
hierot step is :class:`hierot.training.trainer.Trainer`'s own step (batch gather, objective under
the spec's precision, finite check, backward, Adam). A variant is a set of spec overrides
(:data:`VARIANTS`): ``fp32`` (the preset as it is: fused Adam where the device has it),
``fp32-for-loop`` / ``fp32-foreach`` (``optimizer.implementation``), ``bf16``
(``train.precision: bf16``), ``bf16-fused`` (and ``train.fused_update``), ``compile``
(``train.compile: true``; the first steps, which compile, are reported apart). The plain loop
is the same networks written directly in ``torch.nn`` (same layer sizes, same parameter order)
with the default ``torch.optim.Adam``, in fp32 (the loop a user would write), and the same
loss, Eq. (10), computed inline: reparameterised encodings,
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

    python -m benchmarks train_step --quick     # fewer repeats
    python -m benchmarks train_step             # mnist-stackedwae.v1 @ 128, 512; svhn @ 100
    python -m benchmarks train_step --case quickstart-conv:100 --threads 1
    python -m benchmarks train_step --case mnist-stackedwae.v1:128 --variant fp32 --variant bf16 \
        --profile            # adds the top operators of a torch.profiler trace of each step
    python -m benchmarks train_step --case mnist-stackedwae.v1:128 --variant bf16 \
        --against-autocast   # bf16 also with autocast's casts instead of the weight copies
    python -m benchmarks train_step --case mnist-stackedwae.v1:128 --variant bf16-fused \
        --beside bf16        # the fused update and the default bf16 step in one rotation

The plain networks and loss are in ``benchmarks/_plain.py``.

Writes ``benchmarks/results/train_step/<mode>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import Tensor

import hierot
from benchmarks import _common as common
from benchmarks._plain import PlainModel, copy_parameters, penalty_weights, plain_loss
from hierot.components import DataSplits, KnowsShape
from hierot.spec import dump_spec
from hierot.training import Trainer, single_process

NAME = "train_step"
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
    "bf16-fused": ["train.precision=bf16", "train.fused_update=true"],
}
DEFAULT_VARIANTS = ("fp32", "fp32-for-loop", "bf16")


# -- one case ------------------------------------------------------------------------------------
def data_shape(spec) -> tuple[int, ...]:
    if isinstance(spec.data, KnowsShape):
        return tuple(spec.data.sample_shape())
    return FALLBACK_SHAPES[spec.data.name]


def random_data(spec, batch: int) -> DataSplits:
    """``8 * batch`` uniform random training examples of the spec's data shape (and one batch of
    test examples), seeded."""
    shape = data_shape(spec)
    gen = torch.Generator().manual_seed(0)
    return DataSplits(
        torch.rand(batch * 8, *shape, generator=gen), torch.rand(batch, *shape, generator=gen)
    )


def random_data_trainer(
    preset: str, batch: int, device: torch.device, overrides: list[str] | tuple[str, ...] = ()
) -> Trainer:
    """The preset built by hierot on :func:`random_data`, in a single-process Trainer."""
    overrides = [f"train.batch_size={batch}", "train.progress=false", f"device={device.type}",
                 *overrides]
    spec = hierot.load_spec(preset, overrides)
    data = random_data(spec, batch)
    return Trainer(hierot.build(spec, data=data), None, single_process(device.type))


def plain_optimizer(spec, parameters) -> torch.optim.Optimizer:
    """The default ``torch.optim.Adam`` of the preset's options (torch's own kernel choice)."""
    o = spec.optimizer
    if o.name != "adam":
        raise SystemExit(f"the plain loop covers Adam only, not {o.name}")
    return torch.optim.Adam(parameters, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def plain_loop(trainer: Trainer, device) -> tuple[Callable[[Tensor], Tensor],
                                                    Callable[[int], None]]:
    """The plain fp32 loop beside ``trainer`` (:mod:`benchmarks._plain`'s networks and loss,
    ``trainer``'s initial weights, the default Adam): its loss on a batch and its ``i``-th step
    (batches of a random order of ``trainer``'s data, drawn at the first step)."""
    spec, data = trainer.spec, trainer.train_x
    batch, n = spec.train.batch_size, len(data)
    plain = PlainModel(spec, data_shape(spec)).to(device)
    copy_parameters(trainer.model, plain)
    rec_w, match_w = spec.resolved_weights()
    pen_w = penalty_weights(spec)
    optimizer = plain_optimizer(spec, plain.parameters())
    order: list[Tensor] = []

    def loss(x: Tensor) -> Tensor:
        return plain_loss(plain, x, rec_w, match_w, pen_w)

    def step(i: int) -> None:
        if not order:
            order.append(torch.randperm(n, device=device))
        start = (i * batch) % (n - batch + 1)
        value = loss(data[order[0][start : start + batch]])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return loss, step


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
    plain_batch_loss, plain_step = plain_loop(trainer, device)

    # the two losses agree on one batch under the same seed (in fp32; compiles a compiled model)
    x = trainer.train_x[:batch]
    torch.manual_seed(1)
    t0 = time.perf_counter()
    ours = built.objective(x).total.detach()
    first_forward_s = time.perf_counter() - t0
    torch.manual_seed(1)
    theirs = plain_batch_loss(x).detach()
    agree = abs(float(ours) - float(theirs)) <= 1e-4 * max(1.0, abs(float(theirs)))
    if not agree:
        raise SystemExit(f"{preset}: hierot loss {float(ours)} != plain loss {float(theirs)}")

    def timed(fn) -> float:
        return common.timed(fn, device)

    # timed in the same rotation: bf16 with --against-autocast, a second trainer with the
    # weight copies off (autocast's casts, the step before them); --beside's variant
    others: dict[str, Trainer] = {}
    if args.against_autocast and trainer.copies is not None:
        others["autocast"] = autocast = random_data_trainer(preset, batch, device, overrides)
        autocast.copies = autocast.updates.copies = None
    if args.beside:
        others[args.beside] = random_data_trainer(preset, batch, device, VARIANTS[args.beside])
    warmup_s = []
    for i in range(args.warmup):
        warmup_s.append(timed(trainer._train_step))
        plain_step(i)
        for other in others.values():
            other._train_step()
    ours_t: list[float] = []
    plain_t: list[float] = []
    other_t: dict[str, list[float]] = {name: [] for name in others}
    for i in range(args.repeats):
        steps = [(ours_t, trainer._train_step), (plain_t, lambda i=i: plain_step(i)),
                 *((other_t[name], other._train_step) for name, other in others.items())]
        # rotate which goes first, so none always follows another
        for times, step in steps[i % len(steps):] + steps[:i % len(steps)]:
            times.append(timed(step))

    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer._train_step()
    flops = counter.get_total_flops()
    hierot_s, plain_s = statistics.median(ours_t), statistics.median(plain_t)
    paired = sorted(a / b for a, b in zip(ours_t, plain_t))
    profiles = {}
    if args.profile:
        n = args.profile_steps
        profiles = {"hierot": common.profile_table(trainer._train_step, steps=n),
                    "plain": common.profile_table(lambda: plain_step(0), steps=n)}
        for name, other in others.items():
            profiles[f"hierot, {name}"] = common.profile_table(other._train_step, steps=n)
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
        **(against_autocast(ours_t, plain_t, other_t["autocast"]) if "autocast" in others else {}),
        **({"beside": beside(args.beside, ours_t, plain_t, other_t[args.beside])}
           if args.beside else {}),
        "hierot_times_s": ours_t,
        "plain_times_s": plain_t,
        "flops_per_step": flops,
        "gflops_per_s": flops / hierot_s / 1e9,
        "spec": dump_spec(spec),
    }


def against_autocast(ours_t: list[float], plain_t: list[float], autocast_t: list[float]) -> dict:
    """The autocast step's times and ratios beside the weight copies' (``--against-autocast``)."""
    to_plain = sorted(a / b for a, b in zip(autocast_t, plain_t))
    to_copies = sorted(a / b for a, b in zip(ours_t, autocast_t))
    return {"autocast_median_s": statistics.median(autocast_t),
            "autocast_paired_ratio": statistics.median(to_plain),
            "copies_over_autocast_paired": statistics.median(to_copies),
            "copies_over_autocast_quartiles": [to_copies[len(to_copies) // 4],
                                               to_copies[(3 * len(to_copies)) // 4]],
            "autocast_times_s": autocast_t}


def beside(variant: str, ours_t: list[float], plain_t: list[float], other_t: list[float]) -> dict:
    """``--beside``'s variant: its times, its paired ratio to plain, and ours over it."""
    to_plain = sorted(a / b for a, b in zip(other_t, plain_t))
    ours = sorted(a / b for a, b in zip(ours_t, other_t))
    return {"variant": variant, "median_s": statistics.median(other_t),
            "paired_ratio": statistics.median(to_plain),
            "ours_over_it_paired": statistics.median(ours),
            "ours_over_it_quartiles": [ours[len(ours) // 4], ours[(3 * len(ours)) // 4]],
            "times_s": other_t}


def beside_line(r: dict) -> str:
    """One sentence on ``r``'s ``--beside`` variant (``r["beside"]``)."""
    b = r["beside"]
    return (f"{r['variant']} beside {b['variant']} in the same rotation: {b['variant']} "
            f"{1e3 * b['median_s']:.1f} ms, paired ratio to plain {b['paired_ratio']:.3f}; "
            f"{r['variant']} / {b['variant']} paired {b['ours_over_it_paired']:.3f} (quartiles "
            f"{b['ours_over_it_quartiles'][0]:.3f}-{b['ours_over_it_quartiles'][1]:.3f}).")


# -- driver ----------------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    rows = [
        (r["preset"], r["batch"], r.get("variant", "fp32"), FORMAT[r["channels_last"]],
         f"{1e3 * r['hierot_median_s']:.1f}", f"{1e3 * r['plain_median_s']:.1f}",
         f"{r['ratio']:.3f}", (f"{r['paired_ratio']:.3f} ({r['paired_ratio_quartiles'][0]:.3f}"
         f"-{r['paired_ratio_quartiles'][1]:.3f})"),
         f"{r['first_forward_s'] + (r['warmup_times_s'] or [0.0])[0]:.2f}",
         f"{r['flops_per_step'] / 1e9:.2f}", f"{r['gflops_per_s']:.1f}",
         f"{100 * r['gflops_per_s'] / report['matmul_gflops']:.0f}")
        for r in report["results"]
    ]
    lines = [
        f"# Training-step benchmark ({report['mode']}, {report['device']})",
        "",
        (f"{report['created']}; median of {report['repeats']} steps after {report['warmup']} "
        f"warm-up, hierot and plain alternating. hierot: `Trainer` step of the preset built by "
        f"`hierot.build`; plain: the same networks and Eq. (10) loss written directly in torch."),
        common.machine_line(report),
        (f"Float32 matrix product ({report['matmul_size']}^2): "
        f"{report['matmul_gflops']:.1f} GFLOP/s."),
        "",
        *common.markdown_table(
            ["preset", "batch", "variant", "memory format", "hierot ms", "plain ms",
             "hierot / plain", "paired ratio (quartiles)", "first step s", "GFLOP per step",
             "GFLOP/s", "% of matmul"],
            rows, numeric=[False, True, False, False, *[True] * 8]),
        "",
        ("FLOPs: forward + backward of the model and loss (FlopCounterMode; the optimiser "
        "update is not counted). Plain: the default `torch.optim.Adam` in fp32. First step: the "
        "first forward (the loss check) plus the first training step, compilation included."),
    ]
    for r in report["results"]:
        if "autocast_median_s" in r:
            lines += ["", (f"{r['preset']} batch {r['batch']} ({r['variant']}), timed in the same "
                      f"rotation with autocast's casts instead of the weight copies: "
                      f"{1e3 * r['autocast_median_s']:.1f} ms, paired ratio to plain "
                      f"{r['autocast_paired_ratio']:.3f}; copies / autocast paired "
                      f"{r['copies_over_autocast_paired']:.3f} (quartiles "
                      f"{r['copies_over_autocast_quartiles'][0]:.3f}-"
                      f"{r['copies_over_autocast_quartiles'][1]:.3f}).")]
    lines += ["\n" + beside_line(r) for r in report["results"] if "beside" in r]
    for r in report["results"]:
        for who, table in r.get("profiles", {}).items():
            steps = report.get("profile_steps", 3)
            lines += ["", (f"### Profile: {who}, {r['preset']} batch {r['batch']} "
                      f"({r.get('variant', 'fp32')}), {steps} steps"), "", "```",
                      table.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="fewer warm-up steps and repeats")
    parser.add_argument("--case", action="append", metavar="PRESET:BATCH",
                        help="a preset and batch size (repeatable; default: the paper's presets)")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                        help="memory order of resnet layers; auto: time convolutional presets "
                        "in both")
    parser.add_argument(
        "--variant", action="append", choices=list(VARIANTS),
        help=f"hierot variant to time (repeatable; default: {', '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--profile", action="store_true",
                        help="add a torch.profiler table of 3 steps of each variant and the "
                             "plain loop")
    parser.add_argument("--profile-steps", type=int, default=3,
                        help="steps each --profile trace covers")
    parser.add_argument("--against-autocast", action="store_true",
                        help="bf16: also time the step with autocast's casts instead of the "
                             "weight copies, in the same rotation")
    parser.add_argument("--beside", choices=list(VARIANTS), metavar="VARIANT",
                        help="also time hierot's step in VARIANT in the same rotation (paired)")
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    common.set_threads(args.threads)

    device = torch.device(common.default_device(args.device))
    mode = "quick" if args.quick else "full"
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    args.repeats = args.repeats or (5 if args.quick else 31)
    cases = ([(c.rsplit(":", 1)[0], int(c.rsplit(":", 1)[1])) for c in args.case]
             if args.case else CASES)
    matmul_size = 4096 if device.type == "cuda" else 2048
    report = common.header(
        NAME, mode, argv, device=str(device), warmup=args.warmup, repeats=args.repeats,
        matmul_size=matmul_size, profile_steps=args.profile_steps,
        matmul_gflops=common.matmul_gflops(device, matmul_size, 5 if args.quick else 11),
        results=[])
    print(f"matmul {matmul_size}^2: {report['matmul_gflops']:.1f} GFLOP/s", flush=True)
    for preset, batch in cases:
        conv = any(layer.encoder.name == "resnet" for layer in hierot.load_spec(preset).layers)
        formats = ({"on": [True], "off": [False], "auto": [False, True]} if conv
                   else {args.channels_last: [None]})
        for channels_last, variant in [(c, v) for c in formats[args.channels_last]
                                       for v in (args.variant or DEFAULT_VARIANTS)]:
            r = run_case(preset, batch, device, args, channels_last, variant)
            report["results"].append(r)
            print(f"{preset:<22} batch {batch:<4} {variant:<13} {FORMAT[channels_last]:<13} "
                  f"hierot {1e3 * r['hierot_median_s']:8.1f} ms  "
                  f"plain {1e3 * r['plain_median_s']:8.1f} ms  "
                  f"ratio {r['ratio']:.3f} (paired {r['paired_ratio']:.3f})  "
                  f"{r['gflops_per_s']:.1f} GFLOP/s", flush=True)
            if "autocast_median_s" in r:
                print(f"{'':<22} autocast casts: {1e3 * r['autocast_median_s']:.1f} ms, paired "
                      f"ratio to plain {r['autocast_paired_ratio']:.3f}; copies / autocast "
                      f"{r['copies_over_autocast_paired']:.3f} (quartiles "
                      f"{r['copies_over_autocast_quartiles'][0]:.3f}-"
                      f"{r['copies_over_autocast_quartiles'][1]:.3f})", flush=True)
            if "beside" in r:
                print(f"{'':<22} {beside_line(r)}", flush=True)
    for path in common.write(report, args.out, markdown, stem=f"{mode}-{device.type}{args.tag}"):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
