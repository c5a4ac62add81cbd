"""A divergence inside a training step: its share of the step (``divergence_scaling --share``)
and the step with many prior samples (``divergence_scaling --prior-samples``).

Both build the preset's trainer on random data of its shape (:func:`benchmarks.train_step.
random_data_trainer`) and time whole training steps in one process; the modes and their
options are described in :mod:`benchmarks.divergence_scaling`.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
from typing import Any

from benchmarks import _common as common
from benchmarks import divergences as memory

SHARE_METHODS: dict[str, dict[str, Any]] = {
    "mmd[auto]": {"name": "mmd"},
    "mmd[online]": {"name": "mmd", "backend": "online"},
    "sinkhorn[geomloss]": {"name": "sinkhorn"},
    "sinkhorn[online]": {"name": "sinkhorn", "backend": "online"},
    "sinkhorn[online,scaling=0.3]": {"name": "sinkhorn", "backend": "online", "scaling": 0.3},
    "sinkhorn[pot]": {"name": "sinkhorn", "backend": "pot"},
    "sinkhorn[pot,tolerance=1e-2]": {"name": "sinkhorn", "backend": "pot", "tolerance": 1e-2},
    "sinkhorn[pot,blur=0.5]": {"name": "sinkhorn", "backend": "pot", "blur": 0.5},
    "wasserstein": {"name": "wasserstein"},
    "sliced-wasserstein": {"name": "sliced-wasserstein"},
}
TARGET_SHARE = 0.05
"""The issue's target: every built-in divergence at most 5 % of a training step."""


def share_methods() -> dict[str, dict]:
    """:data:`SHARE_METHODS` and every plug-in divergence, with its defaults."""
    from hierot.registry import divergences

    named = {options["name"] for options in SHARE_METHODS.values()}
    plugins = {n: {"name": n} for n in divergences.names() if n not in named}
    return {**SHARE_METHODS, **plugins}


def why_over(divergence, div_s: float, step_s: float) -> str | None:
    """Why a divergence takes more than :data:`TARGET_SHARE` of the step, with the numbers."""
    if div_s <= TARGET_SHARE * step_s:
        return None
    iterations = getattr(divergence, "iterations", None)
    if not iterations:
        return f"{1e3 * div_s:.1f} ms > {100 * TARGET_SHARE:.0f} % of {1e3 * step_s:.0f} ms"
    o = divergence.options
    total = sum(iterations)
    return (f"POT solves S_eps to tolerance {o.tolerance:g}: {iterations[0]} iterations on "
            f"OT(x, y) (+ {total - iterations[0]} on the self-terms) at "
            f"{1e3 * div_s / total:.2f} ms each; the target needs at most "
            f"{TARGET_SHARE * step_s / (div_s / total):.0f} iterations in all")


def _forward_backward(divergence, x, y) -> None:
    x.grad = None
    divergence(x, y).backward()


def share(args: argparse.Namespace) -> dict:
    """Each divergence's share of a training step, paired in one process (``--share``).

    For each method the preset's Trainer is built with that divergence; then, ``--repeats``
    times in turn, one training step and one forward + backward of the divergence alone on a
    batch of the top latent's shape against as many prior samples. Share = median divergence /
    median step (the step includes the divergence).
    """
    import torch

    from benchmarks.train_step import random_data_trainer
    from hierot.registry import divergences

    common.set_threads(args.threads)
    preset, batch = args.share.rsplit(":", 1)
    device = torch.device(args.device)
    rows = []
    for label, options in share_methods().items():
        flow = json.dumps(options).replace('"', "")
        trainer = random_data_trainer(preset, int(batch), device, [f"divergence={flow}"])
        divergence = divergences.build(trainer.built.spec.divergence)
        dim = trainer.built.spec.latent_dims[-1]
        x = torch.randn(int(batch), dim, device=device, requires_grad=True)
        y = torch.randn(int(batch), dim, device=device)
        run_divergence = functools.partial(_forward_backward, divergence, x, y)
        for _ in range(max(3, args.warmup)):
            trainer._train_step()
            run_divergence()
        steps, alone = [], []
        for _ in range(args.repeats):
            steps.append(common.timed(trainer._train_step, device))
            alone.append(common.timed(run_divergence, device))
        step_s, div_s = statistics.median(steps), statistics.median(alone)
        why = why_over(divergence, div_s, step_s)
        rows.append({"method": label, "options": options, "step_s": step_s, "divergence_s": div_s,
                     "share": div_s / step_s, "why_over_target": why})
        print(f"{label:<30} step {1e3 * step_s:.1f} ms, divergence {1e3 * div_s:.2f} ms, "
              f"{100 * div_s / step_s:.1f} %" + (f": {why}" if why else ""), flush=True)
    return {"preset": preset, "batch": int(batch), "rows": rows}


def prior_samples(args: argparse.Namespace) -> dict:
    """The preset's training step with many prior samples, complete against ``prior_pairs``
    (``--prior-samples``): median seconds of ``--repeats`` steps after ``--warmup``, and the peak
    memory of the last one above what the built trainer held."""
    import torch

    from benchmarks.train_step import random_data_trainer

    common.set_threads(args.threads)
    preset, batch = args.prior_samples.rsplit(":", 1)
    device = torch.device(args.device)
    rows, previous = [], {}
    for m in sorted(args.sizes or (512, 4096, 16384, 65536)):
        for variant, pairs in (("complete", None), ("prior_pairs", args.prior_pairs)):
            row: dict[str, Any] = {"prior_samples": m, "variant": variant, "prior_pairs": pairs}
            last = previous.get(variant)
            predicted = last and last["step_s"] * (m / last["prior_samples"]) ** 2
            if variant == "complete" and predicted and predicted > args.time_cap:
                rows.append({**row, "status": "skipped",
                             "reason": f"predicted {predicted:.0f} s a step > cap "
                                       f"{args.time_cap:.0f} s"})
                print(f"{m:>6} {variant:<12} skipped: predicted {predicted:.0f} s", flush=True)
                continue
            overrides = [f"train.prior_samples={m}"]
            overrides += [f"divergence.prior_pairs={pairs}"] if pairs else []
            trainer = random_data_trainer(preset, int(batch), device, overrides)
            divergence = trainer.built.spec.divergence
            for _ in range(args.warmup):
                trainer._train_step()
            times = [common.timed(trainer._train_step, device)
                     for _ in range(max(0, args.repeats - 1))]
            peak, seconds, method = memory.measured_peak(
                functools.partial(common.timed, trainer._train_step, device), device)
            times.append(seconds)
            shifts = divergence.prior_shifts(m)
            row.update(status="ok", step_s=statistics.median(times), times_s=times,
                       peak_bytes=peak, memory_method=method,
                       backend=divergence.resolved_backend(int(batch), m),
                       pairs_used=m * (m - 1) // 2 if shifts is None else shifts * m)
            previous[variant] = row
            rows.append(row)
            print(f"{m:>6} {variant:<12} {row['step_s']:.3f} s a step, "
                  f"{peak / 2**20:.0f} MiB above the trainer", flush=True)
    return {"preset": preset, "batch": int(batch), "rows": rows}


def _head(report: dict, title: str, method: str) -> list[str]:
    """A report's title, time and method, command and machine."""
    return [f"# {title}", "", f"{report['created']}; {method} Regenerate with:", "",
            f"    {report['command']}", "", common.machine_line(report), ""]


def prior_samples_markdown(report: dict) -> str:
    s = report["prior_samples"]
    lines = _head(
        report, f"Many prior samples in a training step ({s['preset']}, batch {s['batch']})",
        f"median of {report['repeats']} steps after {report['warmup']} warm-up (forward, "
        "backward, update, on random data of the preset's shape), peak memory of the last step "
        "above what the built trainer held. `complete`: the MMD's prior-prior sum over all "
        "m(m-1)/2 pairs; `prior_pairs`: the incomplete U-statistic over that many.")
    rows = [(r["prior_samples"], r["variant"], r.get("prior_pairs") or "all",
             f"{r['pairs_used']:,}" if r["status"] == "ok" else "-", r.get("backend", "-"),
             f"{r['step_s']:.3g}" if r["status"] == "ok" else "-",
             f"{r['peak_bytes'] / 2**20:.0f}" if r["status"] == "ok" else "-",
             r.get("reason", "")) for r in s["rows"]]
    lines += common.markdown_table(
        ["prior samples", "variant", "prior_pairs", "pairs summed", "backend", "s / step",
         "peak MiB", "note"],
        rows, numeric=[True, False, True, True, False, True, True, False])
    return "\n".join(lines) + "\n"


def share_markdown(report: dict) -> str:
    s = report["share"]
    lines = _head(
        report, f"Divergence share of a training step ({s['preset']}, batch {s['batch']})",
        f"median of {report['repeats']} paired runs in one process (a training step, then the "
        "divergence alone, forward + backward, in turn).")
    rows = [(r["method"], f"{1e3 * r['step_s']:.1f}", f"{1e3 * r['divergence_s']:.2f}",
             f"{100 * r['share']:.1f} %", r.get("why_over_target") or "") for r in s["rows"]]
    lines += common.markdown_table(
        ["divergence", "step ms", "divergence ms", "share",
         f"why over {100 * TARGET_SHARE:.0f} %"], rows,
        numeric=[False, True, True, True, False])
    return "\n".join(lines) + "\n"
