"""The benchmark toolkit every script uses: flags, budgets, the machine, timers, tables, write-out.

* :func:`parser` — the flags every benchmark takes (``--quick``, ``--device``, ``--threads``,
  ``--out``), :func:`run_parser` adds those of the training benchmarks (``--seeds``, ``--steps``,
  ``--jobs``) and :func:`budget` the mode's budget with the flags given on top;
* :func:`header` — the top of every report: benchmark, mode, time, the command that regenerates
  it, and :func:`machine_info` (versions, plug-ins, processor, device, load average);
* :func:`sync` and :func:`median_time` — synchronised timing with warm-up;
* :func:`markdown_table`, :func:`machine_line` and :func:`figure_links` — the Markdown of every
  report;
* :func:`draw_figures` and :func:`first_seed_grid` — the figures of the training benchmarks;
* :func:`write` — ``<stem>.json`` and ``<stem>.md``, with the load average at the end.

Benchmarks import only hierot's public API. Run one with ``python -m benchmarks NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


# -- flags and budgets --------------------------------------------------------------------------
def parser(name: str, doc: str, *, quick: str, device: str | None = None,
           device_help: str = "cpu or cuda (default: cuda if available)",
           threads: int | None = None,
           threads_help: str = ("torch CPU threads (default: torch's; "
                                "1 is steadier on a busy machine)"),
           ) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark takes; ``doc`` is the module docstring."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks {name}",
                                     description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--device", default=device, help=device_help)
    parser.add_argument("--threads", type=int, default=threads, help=threads_help)
    parser.add_argument("--out", type=Path, default=RESULTS / name, help="results folder")
    return parser


def run_parser(name: str, doc: str, modes: dict[str, dict], *,
               device_help: str) -> argparse.ArgumentParser:
    """:func:`parser` plus ``--seeds``, ``--steps`` and ``--jobs``: the benchmarks that train
    runs."""
    parser_ = parser(name, doc, quick="tiny budget: " + json.dumps(modes["quick"]),
                     device_help=device_help)
    parser_.add_argument("--seeds", nargs="+", type=int)
    parser_.add_argument("--steps", type=int)
    parser_.add_argument("--jobs", type=int, default=1,
                         help="runs trained at once, each in its own process "
                              "(CPU: jobs * threads <= cores)")
    return parser_


def budget(modes: dict[str, dict], args: argparse.Namespace, *flags: str) -> tuple[str, dict]:
    """``(mode, budget)``: ``modes["quick" or "full"]`` with every flag in ``flags`` that was
    given."""
    mode = "quick" if args.quick else "full"
    chosen = dict(modes[mode])
    chosen.update({k: getattr(args, k) for k in flags if getattr(args, k, None)})
    return mode, chosen


def set_threads(threads: int | None) -> int:
    """Set torch's CPU threads (and OpenMP's, for worker processes) when given; return them."""
    import torch

    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


def default_device(name: str | None) -> str:
    """``name``, else ``cuda`` when present, else ``cpu``."""
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


# -- the report's header -------------------------------------------------------------------------
def command_line(name: str, argv: Sequence[str]) -> str:
    """The command that regenerates a benchmark's results (run from the repository root)."""
    return " ".join(["python -m benchmarks", name, *(_quote(a) for a in argv)])


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " {}[],:*$") else arg


def machine_info(device: str | None = None) -> dict:
    """Versions, plug-ins and machine (:func:`hierot.run.environment`), the processor,
    memory, the device benchmarked and the load average at the start."""
    import torch

    from hierot.run import environment

    gpu = None
    if device and device.startswith("cuda"):
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        **environment(),
        "processor": platform.processor() or platform.machine(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "device": device,
        "gpu": gpu,
        "load_average_at_start": os.getloadavg(),
    }


def header(name: str, mode: str, argv: Sequence[str], *, device: str | None = None,
           **extra: Any) -> dict:
    """The common top of every report: what, when, the command, versions and machine."""
    return {
        "benchmark": name,
        "mode": mode,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(name, argv),
        "device": device,
        "machine": machine_info(device),
        **extra,
        "_started": time.time(),
    }


# -- timing ------------------------------------------------------------------------------------
def sync(device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device) -> float:
    """Seconds of one synchronised call of ``fn``."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], device, *, warmup: int,
                repeats: int) -> tuple[float, list[float]]:
    """Median seconds of ``repeats`` synchronised calls after ``warmup``, and every time."""
    for _ in range(warmup):
        fn()
    times = [timed(fn, device) for _ in range(repeats)]
    return statistics.median(times), times


def profile_table(step: Callable[[], object], rows: int = 12, steps: int = 3) -> str:
    """The operators taking the most self CPU time over ``steps`` steps (torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def matmul_gflops(device, size: int, repeats: int) -> float:
    """Achieved GFLOP/s of a float32 ``size`` x ``size`` matrix product (median)."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    median, _ = median_time(lambda: a @ b, device, warmup=1, repeats=repeats)
    return 2 * size**3 / median / 1e9


# -- Markdown and write-out ----------------------------------------------------------------------
def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   numeric: Sequence[bool] | None = None) -> list[str]:
    """The lines of a Markdown table; ``numeric[i]`` right-aligns column i (default: all but the
    first)."""
    numeric = numeric if numeric is not None else [i > 0 for i in range(len(columns))]
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if right else "---" for right in numeric) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def report_intro(report: dict, title: str, description: str) -> list[str]:
    """The opening lines of a training benchmark's report: title, time, command, what, machine."""
    return [
        f"# {title} ({report['mode']} mode)",
        "",
        f"{report['created']}; wall time {report['wall_time_s']} s. Regenerate with:",
        "",
        f"    {report['command']}",
        "",
        description,
        "",
        machine_line(report),
        "",
    ]


def machine_line(report: dict) -> str:
    """One sentence on the machine and its load, from :func:`machine_info` (with the end load)."""
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    plugins = {k: v for k, v in m["plugins"].items() if v}
    load = tuple(round(v, 2) for v in m["load_average_at_start"])
    end = tuple(round(v, 2) for v in m.get("load_average_at_end", ()))
    jobs = report.get("jobs", 1)
    threads = (f"torch threads {m['torch_threads']}"
               + (f", {jobs} runs at a time" if jobs > 1 else ""))
    return (f"Machine: {m['processor']} ({m['platform']}), {m['cpu_count']} CPUs, {threads}, "
            f"GPU: {m['gpu'] or m['cuda'] or 'none'}; python {m['python']}; {packages}; plug-ins: "
            f"{plugins or 'none'}. Load average (1, 5, 15 min) at start {load}, at end {end}: "
            "other work on the machine slows every timing.")


def figure_links(report: dict, names: Sequence[str]) -> list[str]:
    """Markdown lines showing each figure ``report["<name>_png"]`` that was drawn, each followed by
    a blank line."""
    lines = []
    for name in names:
        if report.get(f"{name}_png"):
            lines += [f"![{name}]({report[f'{name}_png']})", ""]
    return lines


def write(report: dict, out: Path, markdown: Callable[[dict], str],
          stem: str | None = None) -> list[Path]:
    """``out/<stem>.json`` and ``out/<stem>.md`` (``markdown(report)``); ``stem``: the mode."""
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["wall_time_s"] = round(time.time() - report.pop("_started", time.time()), 1)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (stem or report["mode"])
    json_file, md_file = path.with_name(path.name + ".json"), path.with_name(path.name + ".md")
    json_file.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md_file.write_text(markdown(report))
    return [json_file, md_file]


def small_png(path: Path, colours: int = 16) -> Path:
    """Re-save a PNG with an adaptive palette of ``colours`` (committed figures stay small)."""
    from PIL import Image

    with Image.open(path) as image:
        image.convert("RGB").quantize(colours).save(path, optimize=True)
    return path


# -- figures -------------------------------------------------------------------------------------
def draw_figures(report: dict, out: Path, stem: str,
                 figures: dict[str, Callable[[Path], Path | None]]) -> None:
    """Draw each figure to ``out/<stem>-<name>.png`` and record its file name (``None`` when not
    drawn) as ``report["<name>_png"]``."""
    for name, draw in figures.items():
        path = draw(out / f"{stem}-{name}.png")
        report[f"{name}_png"] = path.name if path else None


def first_seed_grid(report: dict, run_root: Path, columns: dict[str, str],
                    draw: Callable[[Any, Path], list[Path]], out: Path, size: tuple[float, float]
                    ) -> Path | None:
    """The first seed's run ``run_root/<key>/seed-<seed>`` of every column, side by side.

    ``columns`` maps each run key to its column title; ``draw(run, run_dir)`` draws that run's
    pictures (one a row) and returns their files. ``None`` when a run has no ``eval.json``.
    """
    import matplotlib.image as mpimg

    from hierot.evaluation import load_run
    from hierot.evaluation.plotting import new_figure, save

    seed = report["budget"]["seeds"][0]
    panels = {}
    for key in columns:
        run_dir = run_root / key / f"seed-{seed}"
        if not (run_dir / "eval.json").exists():
            return None
        panels[key] = draw(load_run(run_dir, device=report["device"]), run_dir)
    figure = new_figure(*size)
    figure.set_dpi(72)
    axes = figure.subplots(max(len(p) for p in panels.values()), len(panels), squeeze=False)
    for c, (key, paths) in enumerate(panels.items()):
        for r, path in enumerate(paths):
            axes[r][c].imshow(mpimg.imread(path))
            axes[r][c].set_axis_off()
        axes[0][c].set_title(f"{columns[key]} (seed {seed})", fontsize="medium")
    return small_png(save(figure, out))


def run_worker(command: Sequence[str], *, timeout: float | None = None,
               tail_chars: int | None = None) -> dict:
    """Run a benchmark's worker process and return the JSON dict it printed last.

    A worker that runs past ``timeout`` seconds is a ``skipped`` row, one that exits non-zero a
    ``failed`` row naming its exit status and the last line of its stderr (cut to
    ``tail_chars``): a row of the report, not a crash of the benchmark.
    """
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, check=False,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"worker ran past {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": "failed", "reason": f"exit {done.returncode}: {tail[:tail_chars]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
