"""Where the bf16 training step's time goes: the passes over every weight, in place and alone.

Under ``train.precision: bf16`` the trainer runs its matrix products on persistent bfloat16
copies of the weights (``hierot/training/weight_copies.py``). Besides the products and the
rest of the forward and backward passes, four passes over all the weights remain in each step:

* ``refresh``: the float32 masters cast into the bfloat16 copies after each update;
* ``widening``: the linear layers' bfloat16 weight gradients widened into float32 buffers;
* ``norm``: the gradient norm (one norm per gradient tensor; finite check, logging, clipping);
* ``adam``: the fused Adam update (reads parameter, gradient and both moments, writes three).

**In place.** Each arm is the bf16 step of the preset with some of these passes *removed*
(timing only: such a step computes the wrong update, and its weights are never used), timed in
the same rotation as the step itself and the plain fp32 loop of ``train_step`` (the same
networks and loss, written in torch, default Adam). The paired ratio of an arm to the plain loop
is what the step would cost without those passes: the most that making them cheaper can buy.

**Alone.** Each pass as a kernel on the model's own tensors, over its ~100 tensors as the
trainer runs it against one kernel over one flat buffer of the same size (the flat buffers of
NVIDIA apex and DeepSpeed), buffers filled with real values.

**Compiled** (``--compiled``, Inductor: needs a C++ compiler): one
``torch.compile``'d Adam-and-cast kernel on flat buffers that reads bfloat16 gradients and
writes the bfloat16 copies (what would replace the widening, Adam and the refresh), against
those three passes run flat (medians of ``--repeats`` calls after 3 warm-up calls); and in
place, an arm whose four passes are replaced by that kernel and a compiled norm of the bfloat16
gradients (timing only, on flat buffers of the right sizes that are not the model's): what such
a fused design would cost in the step.

**Fused** (``--fused``): the real step of ``train.fused_update`` (its C kernel,
``hierot/training/fused_update.py``) as one more arm in place, and alone its kernel on the same
flat buffers as the compiled one (with ``--compiled``), paired call by call with the passes it
replaces: widening, norm, fused Adam and refresh.

    python -m benchmarks bf16_step_parts --threads 1
    python -m benchmarks bf16_step_parts --threads 1 --compiled --tag=-compiled
    python -m benchmarks bf16_step_parts --threads 1 --compiled --fused --tag=-fused

Writes ``benchmarks/results/bf16_step_parts/<mode>-<device><tag>.{json,md}``.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import _common as common
from benchmarks import train_step
from benchmarks.train_step import random_data_trainer
from hierot.training import Trainer
from hierot.training.fused_update import FusedBf16Adam
from hierot.training.weight_copies import LowPrecisionWeights

NAME = "bf16_step_parts"
ARMS = {
    "the bf16 step": (),
    "without refresh": ("refresh",),
    "without widening": ("widening",),
    "without norm": ("norm",),
    "without refresh, widening and norm": ("refresh", "widening", "norm"),
    "without adam": ("adam",),
}
COMPILED = "compiled norm and Adam-and-cast in place of the four passes"
FUSED = "train.fused_update's step"


# -- in place --------------------------------------------------------------------------------------
def without(trainer: Trainer, passes: tuple[str, ...]) -> Trainer:
    """``trainer`` with ``passes`` removed from its step (timing only: a wrong update). Call after
    a warm-up step, so that the buffers a removed pass would have written hold real values."""
    copies = trainer.copies
    assert copies is not None, "the bf16 step on one process keeps weight copies"
    if "refresh" in passes:
        copies.refresh = lambda: None  # type: ignore[method-assign]
    if "widening" in passes:
        copies.accumulate = lambda i, low: copies.fresh.add(i)  # type: ignore[method-assign]
    if "norm" in passes:
        def grad_norms(optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
            copies.gradients_to_masters()
            zero = torch.zeros(1)
            return zero, zero[0]

        trainer.updates.grad_norms = grad_norms  # type: ignore[method-assign]
    if "adam" in passes:
        trainer.optimizer.step = lambda closure=None: None  # type: ignore[method-assign]
    return trainer


def plain_loop(trainer: Trainer) -> Callable[[], None]:
    """One step of ``train_step``'s plain fp32 loop on ``trainer``'s data and weights, the next
    batch at each call."""
    _, step = train_step.plain_loop(trainer, trainer.train_x.device)
    count = itertools.count()
    return lambda: step(next(count))


def in_place(preset: str, batch: int, warmup: int, repeats: int, compiled: bool,
             fused: bool = False) -> dict:
    """Every arm of :data:`ARMS` (and :data:`COMPILED`, :data:`FUSED`) and the plain loop,
    rotated; paired ratios per arm."""
    device = torch.device("cpu")
    arms: dict[str, Callable[[], object]] = {}
    compile_s = None
    for name, passes in ARMS.items():
        trainer = random_data_trainer(preset, batch, device, ["train.precision=bf16"])
        trainer._train_step()
        arms[name] = without(trainer, passes)._train_step
    if compiled:
        arm = random_data_trainer(preset, batch, device, ["train.precision=bf16"])
        arm._train_step()
        arms[COMPILED] = with_compiled_kernels(arm)._train_step
        compile_s = arm.compile_s  # type: ignore[attr-defined]
    if fused:
        arms[FUSED] = random_data_trainer(preset, batch, device, [
            "train.precision=bf16", "train.fused_update=true"])._train_step
    arms["plain fp32 loop"] = plain_loop(trainer)
    steps = list(arms.items())
    times: dict[str, list[float]] = {name: [] for name in arms}
    for i in range(warmup + repeats):
        for name, step in steps[i % len(steps):] + steps[:i % len(steps)]:
            seconds = common.timed(step, device)
            if i >= warmup:
                times[name].append(seconds)
    return {name: _paired(times[name], times["plain fp32 loop"], times["the bf16 step"])
            for name in arms} | {"times_s": times,
                                 **({"compile_s": compile_s} if compiled else {})}


def _paired(arm: list[float], plain: list[float], step: list[float]) -> dict:
    to_plain = sorted(a / b for a, b in zip(arm, plain))
    to_step = sorted(a / b for a, b in zip(arm, step))
    q = len(to_plain) // 4
    return {"median_s": statistics.median(arm), "to_plain": statistics.median(to_plain),
            "to_plain_quartiles": [to_plain[q], to_plain[-1 - q]],
            "to_step": statistics.median(to_step),
            "to_step_quartiles": [to_step[q], to_step[-1 - q]]}


# -- alone -----------------------------------------------------------------------------------------
def alone(preset: str, batch: int, repeats: int, compiled: bool, fused: bool = False) -> dict:
    """Each pass as the trainer runs it (per tensor) and over one flat buffer (milliseconds)."""
    device = torch.device("cpu")
    trainer = random_data_trainer(preset, batch, device, ["train.precision=bf16"])
    trainer._train_step()
    copies = trainer.copies
    assert copies is not None
    masters = [p.detach() for p in copies.masters]
    lows = [copies.low[i] for i in sorted(copies.low)]
    wides = [copies.grads[i] for i in sorted(copies.low)]
    params = list(trainer.model.parameters())
    grads = [p.grad for p in params if p.grad is not None]
    flat = {"masters": torch.cat([m.flatten() for m in masters]),
            "low": torch.cat([g.flatten() for g in lows]),
            "grads": torch.cat([g.flatten() for g in grads])}
    flat["copies"] = flat["masters"].to(torch.bfloat16)
    flat["wide"] = flat["low"].float()
    flat_param = torch.nn.Parameter(torch.cat([p.detach().flatten() for p in params]))
    flat_param.grad = flat["grads"]
    flat_adam = torch.optim.Adam([flat_param], lr=1e-4, fused=True)

    def ms(fn: Callable[[], object]) -> float:
        return 1e3 * common.median_time(fn, device, warmup=3, repeats=repeats)[0]

    with torch.no_grad():
        rows = {
            "refresh": (ms(lambda: torch._foreach_copy_(list(copies.copies), masters)),
                        ms(lambda: flat["copies"].copy_(flat["masters"]))),
            "widening": (ms(lambda: torch._foreach_copy_(wides, lows)),
                         ms(lambda: flat["wide"].copy_(flat["low"]))),
            "norm": (ms(lambda: torch.linalg.vector_norm(torch.stack(
                torch._foreach_norm(grads)))), ms(lambda: torch.linalg.vector_norm(flat["grads"]))),
            "adam": (ms(trainer.optimizer.step), ms(flat_adam.step)),
        }
    report = {"passes_ms": {k: {"per_tensor": a, "flat": b} for k, a, b in
                            ((k, *v) for k, v in rows.items())},
              "tensors": {"copies": len(masters), "linear gradients": len(lows),
                          "gradients": len(grads)},
              "values": {"copies": flat["masters"].numel(), "parameters": flat_param.numel()}}
    if compiled:
        report["compiled"] = compiled_adam_and_cast(flat["masters"], flat["low"], ms)
    if fused:
        report["fused"] = fused_alone(flat["masters"], flat["low"], repeats)
    return report


def fused_alone(masters: torch.Tensor, low: torch.Tensor, repeats: int) -> dict:
    """``train.fused_update``'s optimiser (:class:`FusedBf16Adam`: the norm and the update, one
    kernel each) on one flat weight against the four passes it replaces, run flat: widening,
    norm, torch's fused Adam and refresh; called in turn, ``repeats`` pairs after 3 warm-up
    pairs. Medians (ms) and the median paired ratio."""
    n = min(masters.numel(), low.numel())
    holder = torch.nn.Linear(n, 1, bias=False)
    with torch.no_grad():
        holder.weight.copy_(masters[:n].view(1, n))
    copies = LowPrecisionWeights(holder, torch.bfloat16, widen=False)
    fused = FusedBf16Adam(holder.parameters(), copies, lr=1e-4)
    g16, cpu = low[:n].view(1, n).clone(), torch.device("cpu")

    def kernel() -> None:
        copies.copies[0].grad = g16  # as autograd leaves a copy's gradient
        fused.gradient_norms(cpu)
        fused.step()

    param = torch.nn.Parameter(masters[:n].clone())
    param.grad = torch.empty(n)
    adam, c16 = torch.optim.Adam([param], lr=1e-4, fused=True), torch.empty_like(g16[0])

    def passes() -> None:
        param.grad.copy_(g16[0])
        torch.linalg.vector_norm(param.grad)
        adam.step()
        c16.copy_(param.detach())

    times: dict[str, list[float]] = {"fused_update": [], "four_passes": []}
    pair = (("fused_update", kernel), ("four_passes", passes))
    with torch.no_grad():
        for i in range(3 + repeats):
            for name, fn in pair if i % 2 == 0 else pair[::-1]:  # each goes first in turn
                seconds = common.timed(fn, cpu)
                if i >= 3:
                    times[name].append(seconds)
    ratios = sorted(a / b for a, b in zip(times["fused_update"], times["four_passes"]))
    return {"values": n, **{f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()},
            "paired_ratio": statistics.median(ratios),
            "paired_quartiles": [ratios[len(ratios) // 4], ratios[-1 - len(ratios) // 4]]}


def adam_and_cast(p: torch.Tensor, g16: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
                  c16: torch.Tensor) -> Callable[[], None]:
    """One Inductor kernel over flat buffers: Adam (Kingma & Ba 2015, Alg. 1, written as torch
    writes it, lr 1e-4, betas (0.9, 0.999), at step 10) on the float32 masters ``p`` from the
    bfloat16 gradients ``g16``, then the masters cast into the bfloat16 copies ``c16``."""
    lr, bc1, bc2_sqrt = 1e-4, 1 - 0.9**10, (1 - 0.999**10) ** 0.5

    def step() -> None:
        g = g16.float()
        m.lerp_(g, 0.1)
        v.mul_(0.999).addcmul_(g, g, value=0.001)
        p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(1e-8), value=-lr / bc1)
        c16.copy_(p)

    return torch.compile(step, dynamic=False)


def compiled_adam_and_cast(masters: torch.Tensor, low: torch.Tensor,
                           ms: Callable[[Callable[[], object]], float]) -> dict:
    """:func:`adam_and_cast` against the fused Adam, the widening and the refresh it would
    replace (all flat), and its compile time."""
    n = min(masters.numel(), low.numel())
    p, g16 = masters[:n].clone(), low[:n].clone()
    c16, g32 = torch.empty_like(g16), torch.empty_like(p)
    kernel = adam_and_cast(p, g16, torch.zeros_like(p), torch.full_like(p, 1e-8), c16)
    start = time.perf_counter()
    kernel()
    compile_s = time.perf_counter() - start
    param = torch.nn.Parameter(p.clone())
    param.grad = g32
    fused = torch.optim.Adam([param], lr=1e-4, fused=True)
    return {"values": n, "compile_s": compile_s, "compiled_ms": ms(kernel),
            "fused_adam_ms": ms(fused.step), "widening_ms": ms(lambda: g32.copy_(g16)),
            "refresh_ms": ms(lambda: c16.copy_(param.detach()))}


def with_compiled_kernels(trainer: Trainer) -> Trainer:
    """``trainer`` whose refresh, widening, norm and Adam are replaced by what one fused design
    would run (timing only, on buffers of the right sizes that are not the model's): the norm of
    flat bfloat16 gradients and :func:`adam_and_cast`, both compiled (Inductor)."""
    copies = without(trainer, ("refresh", "widening", "norm", "adam")).copies
    assert copies is not None
    p = torch.cat([c.detach().float().flatten() for c in copies.copies])
    g16 = torch.cat([g.flatten() for g in copies.low.values()])[:p.numel()]
    g16 = torch.cat([g16, torch.zeros(p.numel() - g16.numel(), dtype=g16.dtype)])
    kernel = adam_and_cast(p, g16, torch.zeros_like(p), torch.full_like(p, 1e-8),
                           torch.empty_like(g16))
    norm = torch.compile(lambda: torch.sqrt(torch.sum(torch.square(g16.float()))))

    def grad_norms(optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
        copies.gradients_to_masters()
        total = norm()
        return total.reshape(1), total

    trainer.updates.grad_norms = grad_norms  # type: ignore[method-assign]
    trainer.optimizer.step = lambda closure=None: kernel()  # type: ignore[method-assign]
    start = time.perf_counter()
    kernel(), norm()  # compiled here (or read from Inductor's cache)
    trainer.compile_s = time.perf_counter() - start  # type: ignore[attr-defined]
    return trainer


# -- report ----------------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    place, solo = report["in_place"], report["alone"]
    rows = [(name, f"{1e3 * r['median_s']:.1f}", _ratio(r, "to_plain"), _ratio(r, "to_step"))
            for name, r in place.items() if name not in ("times_s", "compile_s")]
    passes = [(name, f"{r['per_tensor']:.2f}", f"{r['flat']:.2f}")
              for name, r in solo["passes_ms"].items()]
    lines = [
        *common.report_intro(report, "Where the bf16 step's time goes", (
            f"`{report['preset']}` at batch {report['batch']}, `train.precision: bf16` (weight "
            f"copies), {report['repeats']} rotations after {report['warmup']} warm-up rotations. "
            "An arm without a pass computes a wrong update (timing only).")),
        "## In place: the step without each pass", "",
        *common.markdown_table(["arm", "median ms", "paired ratio to the plain fp32 loop",
                                "paired ratio to the bf16 step"], rows),
        "", "## Alone: each pass as one kernel per tensor and over one flat buffer", "",
        (f"{solo['tensors']['copies']} weight copies ({solo['values']['copies']:,} values), "
         f"{solo['tensors']['linear gradients']} linear-layer gradients, "
         f"{solo['tensors']['gradients']} gradients ({solo['values']['parameters']:,} "
         "parameters). Milliseconds, medians."), "",
        *common.markdown_table(["pass", "per tensor (as the trainer runs it) ms", "flat ms"],
                               passes),
    ]
    if "compiled" in solo:
        c = solo["compiled"]
        lines += ["", (f"Compiled Adam-and-cast on {c['values']:,} flat values (bfloat16 "
                  f"gradients in, bfloat16 copies out): {c['compiled_ms']:.2f} ms (its first "
                  f"call and the norm's, compiling both: {place['compile_s']:.1f} s) against "
                  f"fused Adam {c['fused_adam_ms']:.2f} + "
                  f"widening {c['widening_ms']:.2f} + refresh {c['refresh_ms']:.2f} = "
                  f"{c['fused_adam_ms'] + c['widening_ms'] + c['refresh_ms']:.2f} ms.")]
    if "fused" in solo:
        f = solo["fused"]
        lines += ["", (f"`train.fused_update`'s norm and update on {f['values']:,} flat values: "
                  f"{f['fused_update_ms']:.2f} ms against {f['four_passes_ms']:.2f} ms for "
                  f"widening, norm, fused Adam and refresh; paired ratio "
                  f"{f['paired_ratio']:.3f} ({f['paired_quartiles'][0]:.3f}-"
                  f"{f['paired_quartiles'][1]:.3f}).")]
    return "\n".join(lines) + "\n"


def _ratio(r: dict, key: str) -> str:
    low, high = r[f"{key}_quartiles"]
    return f"{r[key]:.3f} ({low:.3f}-{high:.3f})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="fewer rotations", device="cpu",
                           device_help="cpu only")
    parser.add_argument("--case", default="mnist-stackedwae.v1:128", metavar="PRESET:BATCH")
    parser.add_argument("--compiled", action="store_true",
                        help="also time a compiled Adam-and-cast kernel (needs a C++ compiler)")
    parser.add_argument("--fused", action="store_true",
                        help="also time train.fused_update's step and kernel (needs a C compiler)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        parser.error("--device: cpu only (the passes measured are those of the CPU step)")
    common.set_threads(args.threads)
    mode = "quick" if args.quick else "full"
    repeats = args.repeats or (5 if args.quick else 21)
    preset, batch = args.case.rsplit(":", 1)
    report = common.header(NAME, mode, argv, device="cpu", preset=preset, batch=int(batch),
                           warmup=args.warmup, repeats=repeats)
    with warnings.catch_warnings():  # the arm without Adam: the schedule steps alone
        warnings.simplefilter("ignore", UserWarning)
        report["in_place"] = in_place(preset, int(batch), args.warmup, repeats,
                                      args.compiled, args.fused)
    for name, r in report["in_place"].items():
        if name not in ("times_s", "compile_s"):
            print(f"{name:<36} {1e3 * r['median_s']:7.1f} ms  to plain {r['to_plain']:.3f}  "
                  f"to the step {r['to_step']:.3f}", flush=True)
    report["alone"] = alone(preset, int(batch), max(repeats, 11), args.compiled, args.fused)
    for name, r in report["alone"]["passes_ms"].items():
        print(f"{name:<10} per tensor {r['per_tensor']:.2f} ms  flat {r['flat']:.2f} ms")
    if "compiled" in report["alone"]:
        print("compiled:", report["alone"]["compiled"])
    if "fused" in report["alone"]:
        print("fused update alone:", report["alone"]["fused"])
    for path in common.write(report, args.out, markdown, stem=f"{mode}-cpu{args.tag}"):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
