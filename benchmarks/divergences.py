"""Time and memory of every registered divergence (plug-ins included), forward + backward.

For each divergence (default options, plus ``sinkhorn``'s POT backend and both backends at
``blur=0.5``), batch size N (both samples) and flattened dimension d, a fresh worker process
builds the divergence, draws ``x ~ N(0, I)`` and ``y ~ N(0.5, I)`` (both requiring gradients),
runs warm-up evaluations, then times ``D(x, y).backward()`` ``--repeats`` times (synchronising
CUDA) and reports the median.

Peak memory of one more evaluation, above what was allocated before it:

* CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()`` (tensors only).
* CPU: peak resident set size (``VmHWM`` in ``/proc/self/status``, reset through
  ``/proc/self/clear_refs``) minus the resident size before the evaluation: everything the
  process touched (tensors, POT's float64 copies, allocator slack). After the timed runs, glibc
  is told (``mallopt``) to return freed blocks of 64 KiB or more to the system, so the resident
  size falls back between evaluations; smaller allocations are not seen. Where the peak cannot
  be reset, the worker's lifetime peak (``ru_maxrss``) is used instead; the method is recorded.

For scale, a worker also times one training step of ``--step PRESET:BATCH`` (default
``mnist-stackedwae.v1:128``, the paper's model and batch: the Trainer's own step on random data of
the preset's shape, median after warm-up, same threads), and every row with N equal to that batch
gets the divergence's share of the step (the target: at most 5 % at the paper's batch). The step
runs in another process here; ``python -m benchmarks divergence_scaling --share`` pairs the two in
one process, which is steadier on a loaded machine, and says why a divergence is over 5 %.

Combinations predicted (from the previous N, assuming O(N^2) time and memory) to exceed
``--time-cap`` seconds per evaluation or half the memory are skipped, as are those whose warm-up
runs past the cap or whose worker dies; each is recorded with the reason.

    python -m benchmarks divergences --quick      # N in {128, 512}, d in {2, 32}
    python -m benchmarks divergences              # N in {128, 512, 2048, 8192}, d in {2, 8, 32}

Writes ``benchmarks/results/divergences/<mode>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common

NAME = "divergences"
# Beyond each divergence's defaults: the POT backend at the default blur (its cross term runs to
# max_iter for N(0, I) data) and both backends at a blur where POT's solve converges.
VARIANTS_EXTRA = {
    "sinkhorn[pot]": ("sinkhorn", {"backend": "pot"}),
    "sinkhorn[blur=0.5]": ("sinkhorn", {"blur": 0.5}),
    "sinkhorn[pot,blur=0.5]": ("sinkhorn", {"backend": "pot", "blur": 0.5}),
}


# -- worker: one (divergence, N, d) in a fresh process -----------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _release_freed_memory() -> bool:
    """Make glibc hand freed blocks of 64 KiB or more back to the system from now on (and what
    it holds now), so the resident size measures live memory; ``False`` if not glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 65536)
        libc.mallopt(m_trim_threshold, 0)
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured_peak(step, device) -> tuple[int, float, str]:
    """One measured run of ``step`` (which returns its seconds): the bytes it took above what was
    held before it (CUDA's allocator peak; on the CPU the peak resident size, with freed blocks
    handed back to the system), its seconds, and how the memory was measured."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        seconds = step()
        peak = torch.cuda.max_memory_allocated(device) - before
        return peak, seconds, "cuda max_memory_allocated"
    released = _release_freed_memory()
    reset = _reset_peak_rss()
    before = _rss_bytes()
    seconds = step()
    method = "peak RSS delta, " + ("VmHWM reset" if reset else "ru_maxrss")
    method += ", glibc mmap threshold 64 KiB" if released else ""
    return max(0, _peak_rss_bytes() - before), seconds, method


def worker(args: argparse.Namespace) -> dict:
    import torch

    from hierot.registry import divergences

    common.set_threads(args.threads)
    name, options = json.loads(args.worker)
    device = torch.device(args.device)
    divergence = divergences.build(divergences.tagged_options(name)(name=name, **options))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.d, generator=gen).to(device).requires_grad_(True)
    y = (torch.randn(args.n, args.d, generator=gen) + 0.5).to(device).requires_grad_(True)

    def step() -> float:
        x.grad = y.grad = None
        return common.timed(lambda: divergence(x, y).backward(), device)

    for _ in range(args.warmup):
        t = step()
        if t > args.time_cap:
            reason = f"warm-up took {t:.1f} s > cap {args.time_cap} s"
            return {"status": "skipped", "reason": reason}
    times = [step() for _ in range(args.repeats)]

    if device.type != "cuda":
        _release_freed_memory()
        step()  # once with the new allocator settings before measuring
    peak, _, method = measured_peak(step, device)
    return {
        "status": "ok",
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "peak_bytes": peak,
        "memory_method": method,
        # POT's Sinkhorn: its iterations (cross term, self-terms), the why of a large share
        "iterations": getattr(divergence, "iterations", None) or None,
    }


def step_worker(args: argparse.Namespace) -> dict:
    """Median time of one Trainer step of ``args.step`` (PRESET:BATCH) on random data."""
    import torch

    from benchmarks.train_step import random_data_trainer

    common.set_threads(args.threads)
    preset, batch = args.step.rsplit(":", 1)
    device = torch.device(args.device)
    trainer = random_data_trainer(preset, int(batch), device)
    median, times = common.median_time(trainer._train_step, device, warmup=max(3, args.warmup),
                                       repeats=max(11, args.repeats))
    return {"status": "ok", "preset": preset, "batch": int(batch), "median_s": median,
            "times_s": times}


def time_step(args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--step-worker", "--step", args.step,
               "--device", args.device, "--warmup", str(args.warmup), "--repeats",
               str(args.repeats)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return common.run_worker(command)


# -- driver ------------------------------------------------------------------------------------
def variants() -> dict[str, tuple[str, dict]]:
    from hierot.registry import divergences

    found = {n: (n, {}) for n in divergences.names()}
    found.update({k: v for k, v in VARIANTS_EXTRA.items() if v[0] in found})
    return dict(sorted(found.items()))


def run_one(name: str, options: dict, n: int, d: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--worker", json.dumps([name, options]), "--n", str(n),
        "--d", str(d), "--device", args.device, "--warmup", str(args.warmup),
        "--repeats", str(args.repeats), "--time-cap", str(args.time_cap),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    limit = 120 + args.time_cap * (args.warmup + args.repeats + 1)
    return common.run_worker(command, timeout=limit)


def predicted_skip(previous: dict | None, n: int, cap: float, memory: int) -> str | None:
    if not previous or previous.get("status") != "ok":
        return None
    growth = (n / previous["n"]) ** 2
    if previous["median_s"] * growth > cap:
        return f"predicted {previous['median_s'] * growth:.0f} s > cap {cap} s (O(N^2) scaling)"
    if previous["peak_bytes"] * growth > memory / 2:
        return f"predicted {previous['peak_bytes'] * growth / 2**30:.1f} GiB > half the memory"
    return None


def markdown(report: dict) -> str:
    lines = [
        f"# Divergence benchmark ({report['mode']}, {report['device']})",
        "",
        (f"{report['created']}; forward + backward, median of {report['repeats']} runs after "
        f"{report['warmup']} warm-up; time cap {report['time_cap_s']} s per evaluation."),
        common.machine_line(report) + " Torch threads: per worker.",
        f"Memory: {report['memory_method']}.",
        "",
    ]
    step = report.get("step") or {}
    if step.get("status") == "ok":
        lines += [(f"Training step of `{step['preset']}` at batch {step['batch']} (Trainer step, "
                  f"random data, same threads): median {1e3 * step['median_s']:.1f} ms. "
                  f"Share = divergence / step, for the rows with N = {step['batch']} "
                  "(target: at most 5 %)."), ""]
    elif step:
        lines += [f"Training step not timed: {step.get('reason')}.", ""]
    rows = []
    for r in report["results"]:
        share = "-"
        if r["status"] == "ok":
            ms, mib, note = f"{1e3 * r['median_s']:.2f}", f"{r['peak_bytes'] / 2**20:.1f}", ""
            if step.get("status") == "ok" and r["n"] == step["batch"]:
                share = f"{100 * r['median_s'] / step['median_s']:.1f} %"
                if r.get("iterations") and r["median_s"] > 0.05 * step["median_s"]:
                    note = (f"over 5 %: POT's Sinkhorn took {r['iterations'][0]} iterations on "
                            "OT(x, y) (to its tolerance or max_iter), "
                            f"{sum(r['iterations'][1:])} on the self-terms")
        else:
            ms, mib, note = "-", "-", f"{r['status']}: {r['reason']}"
        rows.append((r["divergence"], r["n"], r["d"], ms, share, mib, note))
    lines += common.markdown_table(
        ["divergence", "N", "d", "median ms", "share of step", "peak MiB", "note"], rows,
        numeric=[False, True, True, True, True, True, False])
    lines += ["", "Options used:", ""]
    lines += [f"- `{k}`: `{json.dumps(v)}`" for k, v in report["options"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="N in {128, 512}, d in {2, 32}",
                           threads_help="torch CPU threads per worker")
    parser.add_argument("--only", nargs="*", help="divergence labels to run (default: all)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--time-cap", type=float, default=None, help="seconds per evaluation")
    parser.add_argument("--step", default="mnist-stackedwae.v1:128",
                        help="PRESET:BATCH whose training step the divergences are compared with")
    parser.add_argument("--step-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--d", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.step_worker:
        print(json.dumps(step_worker(args)))
        return 0

    args.device = common.default_device(args.device)
    common.set_threads(args.threads)
    mode = "quick" if args.quick else "full"
    sizes, dims = ((128, 512), (2, 32)) if args.quick else ((128, 512, 2048, 8192), (2, 8, 32))
    args.warmup = args.warmup if args.warmup is not None else 2
    args.repeats = args.repeats or 5
    args.time_cap = args.time_cap or (10.0 if args.quick else 30.0)
    todo = {k: v for k, v in variants().items() if not args.only or k in args.only}
    from hierot.registry import divergences

    report = common.header(
        NAME, mode, argv, device=args.device, warmup=args.warmup, repeats=args.repeats,
        time_cap_s=args.time_cap,
        memory_method="cuda max_memory_allocated" if args.device.startswith("cuda") else
        "peak resident set size above the resident size before one evaluation (VmHWM reset "
        "via /proc/self/clear_refs; glibc told to return freed blocks >= 64 KiB)",
        options={
            label: divergences.tagged_options(name)(name=name, **options).model_dump()
            for label, (name, options) in todo.items()
        },
        results=[],
    )
    report["step"] = time_step(args)
    print(f"training step of {args.step}: " + (f"{1e3 * report['step']['median_s']:.1f} ms"
          if report["step"]["status"] == "ok" else report["step"]["reason"]), flush=True)
    memory = report["machine"]["memory_bytes"]
    for label, (name, options) in todo.items():
        for d in dims:
            previous, given_up = None, None
            for n in sizes:
                reason = given_up or predicted_skip(previous, n, args.time_cap, memory)
                if reason:
                    result = {"status": "skipped", "reason": reason}
                else:
                    result = run_one(name, options, n, d, args)
                result = {"divergence": label, "n": n, "d": d, **result}
                report["results"].append(result)
                if result["status"] == "ok":
                    previous, shown = result, f"{1e3 * result['median_s']:.2f} ms"
                else:
                    given_up, shown = f"{result['status']} at N={n}", result["reason"]
                print(f"{label:<24} N={n:<5} d={d:<3} {shown}", flush=True)
    for path in common.write(report, args.out, markdown,
                             stem=f"{mode}-{args.device.split(':')[0]}"):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
