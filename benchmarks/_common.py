"""Shared machinery of the training benchmarks (``mmd_vs_sinkhorn``, ``stacked_vs_flat``).

Each benchmark trains run directories under ``benchmarks/results/NAME/runs/<mode>/`` (kept out of
git), evaluates each with :func:`hierot.evaluation.evaluate` (the metrics of ``hierot eval``), and
writes ``benchmarks/results/NAME/<mode>.json``, ``<mode>.md`` and ``<mode>-*.png``: the resolved
specs, versions, machine, seeds and the exact command that regenerates all of it.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def command_line(name: str, argv: list[str]) -> str:
    """The command that regenerates a benchmark's results (run from the repository root)."""
    return " ".join(["python -m benchmarks", name, *(_quote(a) for a in argv)])


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " {}[],:*$") else arg


def set_threads(threads: int | None) -> int:
    import torch

    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


def run_parallel(function: Callable[..., dict], jobs: list[tuple], workers: int,
                 threads: int | None) -> list[dict]:
    """``[function(*job) for job in jobs]``, in ``workers`` fresh processes when more than one.

    Each worker process runs ``threads`` torch threads; keep ``workers * threads`` at or below
    the number of cores, or the timings measure contention (OpenMP threads spin while waiting).
    """
    if workers <= 1:
        return [function(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=set_threads,
                             initargs=(threads,)) as pool:
        return list(pool.map(function, *zip(*jobs)))


def header(name: str, mode: str, argv: list[str], **extra: Any) -> dict:
    """The common top of every report: what, when, the command, versions and machine."""
    from hierot.training.rundir import environment

    return {
        "benchmark": name,
        "mode": mode,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(name, argv),
        "machine": {**environment(), "load_average_at_start": os.getloadavg()},
        **extra,
        "_started": time.time(),
    }


def fresh_dir(path: Path) -> Path:
    """Empty ``path`` (a benchmark's own ``runs/<mode>`` folder) and return it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def train_overrides(steps: int, log_every: int, batch_size: int = 128) -> list[str]:
    """A step budget replacing the preset's (one checkpoint, at the end)."""
    log_every = min(log_every, steps)
    return [(f"train={{batch_size: {batch_size}, steps: {steps}, log_every: {log_every}, "
            f"checkpoint_every: {steps}, progress: false}}")]


def seconds_per_step(run_dir: Path) -> dict:
    """Median seconds per training step over the logging intervals of ``metrics.csv``.

    The first interval (warm-up, allocator growth) is left out when there are others; the last
    one holds the checkpoint write and is left out too when there are at least three.
    """
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [(int(r["step"]), float(r["wall_time"])) for r in csv.DictReader(f)]
    points = [(0, 0.0), *rows]
    rates = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in itertools.pairwise(points) if s1 > s0]
    kept = rates[1:] if len(rates) > 1 else rates
    kept = kept[:-1] if len(kept) > 2 else kept
    return {"median_s": statistics.median(kept), "intervals": len(kept),
            "total_wall_s": rows[-1][1], "steps": rows[-1][0]}


def time_divergence(run_dir: Path, *, device: str | None, warmup: int = 3, repeats: int = 15,
                    seed: int = 0) -> dict:
    """Median time of the run's own divergence, forward + backward, on one training batch.

    The trained model encodes ``batch_size`` training points (reparameterised samples, as in
    training) to the matched (top) latent; the divergence to as many N(0, I) draws is evaluated and
    differentiated with respect to the codes, ``repeats`` times after ``warmup``.
    """
    import torch

    from hierot.evaluation.trained import encode, load_run

    run = load_run(run_dir, device=device)
    batch = run.spec.train.batch_size
    generator = torch.Generator().manual_seed(seed)
    x = run.data.train_x[torch.randperm(len(run.data.train_x), generator=generator)[:batch]]
    torch.manual_seed(seed)
    codes = encode(run.model, x, sample=True, device=run.device)[-1].to(run.device)
    prior = torch.randn(codes.shape, generator=generator).to(run.device)
    divergence = run.built.objective.divergence

    def once() -> float:
        z = codes.clone().requires_grad_(True)
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        start = time.perf_counter()
        divergence(z, prior).backward()
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        return time.perf_counter() - start

    for _ in range(warmup):
        once()
    times = [once() for _ in range(repeats)]
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats,
            "warmup": warmup, "batch": list(codes.shape)}


def mean_std(values: list[float | None]) -> dict:
    """Mean and sample standard deviation (``None`` with fewer than two values) of the values."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not kept:
        return {"mean": None, "std": None, "n": 0, "values": values}
    std = statistics.stdev(kept) if len(kept) > 1 else None
    return {"mean": statistics.fmean(kept), "std": std, "n": len(kept), "values": values}


def fmt(stat: dict, digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± std`` for a Markdown table (``-`` when missing)."""
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean'] * scale:.{digits}g}"
    return text + (f" ± {stat['std'] * scale:.2g}" if stat["std"] is not None else "")


def machine_line(report: dict) -> str:
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    plugins = {k: v for k, v in m["plugins"].items() if v}
    load = tuple(round(v, 2) for v in m["load_average_at_start"])
    end = tuple(round(v, 2) for v in m.get("load_average_at_end", ()))
    jobs = report.get("jobs", 1)
    threads = f"torch threads {m['torch_threads']}" + (f", {jobs} runs at a time" if jobs > 1 else "")
    return (f"Machine: {m['platform']}, {m['cpu_count']} CPUs, {threads}, "
            f"GPU: {m['cuda'] or 'none'}; python {m['python']}; {packages}; plug-ins: "
            f"{plugins or 'none'}. Load average (1, 5, 15 min) at start {load}, at end {end}: "
            "other work on the machine slows every timing.")


def write(report: dict, out: Path, markdown) -> list[Path]:
    """``out/<mode>.json`` and ``out/<mode>.md`` (``markdown(report)``)."""
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["wall_time_s"] = round(time.time() - report.pop("_started", time.time()), 1)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / report["mode"]
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    return [stem.with_suffix(".json"), stem.with_suffix(".md")]


def small_png(path: Path, colours: int = 16) -> Path:
    """Re-save a PNG with an adaptive palette of ``colours`` (committed figures stay small)."""
    from PIL import Image

    with Image.open(path) as image:
        image.convert("RGB").quantize(colours).save(path, optimize=True)
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
