"""Time and peak memory of ``mmd`` and ``sinkhorn`` as N grows: tensorized against online.

For each method, N (both samples, x ~ N(0, I) and y ~ N(0.5, I), x requiring gradients as the
encoded batch does) and d, a fresh worker process times forward + backward (``--repeats`` runs
after ``--warmup``) and measures the peak memory of the last timed run above the resident size
with the inputs allocated (the method of ``benchmarks/divergences.py``: peak RSS, VmHWM reset,
glibc told to return freed blocks; ``torch.cuda.max_memory_allocated`` on CUDA).

Methods: ``mmd`` with ``backend: tensorized`` and ``online`` (IMQ, the WAE scales);
``sinkhorn`` (blur 0.05, p = 2, scaling 0.5) through GeomLoss's tensorized backend, hierot's
``online`` backend, POT (hierot's ``pot`` backend), and GeomLoss's KeOps ``online`` backend when
``pykeops`` imports and compiles (``--keops-path`` adds a folder where it was installed).

Rows predicted (from the previous N, as O(N^2) time and, for the dense methods, memory) to pass
``--time-cap`` seconds or ``--memory-cap`` GiB are skipped and recorded with the reason.

    python -m benchmarks divergence_scaling --quick     # N in {1024, 4096}, d = 8
    python -m benchmarks divergence_scaling --sizes 1024 4096 16384 65536 --dims 8

``--share PRESET:BATCH`` measures instead each divergence's share of that preset's training step
(every built-in, the POT backend's variants and every plug-in; paired in one process) and, for a
share over 5 %, says why with the numbers (for POT: its iterations and their cost)::

    python -m benchmarks divergence_scaling --share mnist-stackedwae.v1:128 --threads 1 \
        --repeats 11 --warmup 3

``--prior-samples PRESET:BATCH`` times instead that preset's training step (forward, backward,
update) and its peak memory with ``train.prior_samples`` set to each of ``--sizes``, with the
MMD's complete prior-prior sum and with ``prior_pairs`` (``--prior-pairs``, an incomplete
U-statistic over that many pairs): the part of the step that grows as the square of the prior
samples and carries no gradient. Complete rows predicted (O(M^2) from the previous size) to pass
``--time-cap`` seconds a step are skipped with the prediction::

    python -m benchmarks divergence_scaling --prior-samples mnist-stackedwae-z8.v1:128 \
        --sizes 512 4096 16384 65536 --threads 1 --repeats 3 --warmup 1

Writes ``benchmarks/results/divergence_scaling/<mode>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _step_share as in_step
from benchmarks import divergences as memory

NAME = "divergence_scaling"
METHODS = {
    "mmd[tensorized]": ("mmd", {"backend": "tensorized"}),
    "mmd[online]": ("mmd", {"backend": "online"}),
    "sinkhorn[geomloss]": ("sinkhorn", {"backend": "geomloss"}),
    "sinkhorn[online]": ("sinkhorn", {"backend": "online"}),
    "sinkhorn[pot]": ("sinkhorn", {"backend": "pot"}),
    "sinkhorn[geomloss-keops]": ("sinkhorn", {"geomloss_backend": "online"}),
}
COLOURS = {"mmd[tensorized]": "tab:red", "mmd[online]": "tab:red", "sinkhorn[geomloss]": "tab:blue",
           "sinkhorn[online]": "tab:blue", "sinkhorn[pot]": "tab:green",
           "sinkhorn[geomloss-keops]": "tab:purple"}
MARKERS = {2: "s", 8: "o", 32: "^"}
DENSE = {"mmd[tensorized]", "sinkhorn[geomloss]", "sinkhorn[pot]"}


def worker(args: argparse.Namespace) -> dict:
    """One (method, N, d): times and the peak memory above the inputs."""
    if args.keops_path:
        sys.path.insert(0, args.keops_path)
    import torch

    from hierot.registry import divergences

    common.set_threads(args.threads)
    name, options = METHODS[args.worker]
    device = torch.device(args.device)
    try:
        divergence = divergences.build(divergences.tagged_options(name)(name=name, **options))
    except Exception as exc:  # noqa: BLE001 - a method that cannot build is a row, not a crash
        return {"status": "unavailable", "reason": str(exc).splitlines()[0][:200]}
    gen = torch.Generator().manual_seed(0)
    dtype = torch.float32
    x = torch.randn(args.n, args.d, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    y = (torch.randn(args.n, args.d, generator=gen, dtype=dtype) + 0.5).to(device)

    def step() -> float:
        x.grad = None
        return common.timed(lambda: divergence(x, y).backward(), device)

    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.repeats - 1)]
    # the last timed run also gives the peak memory (one evaluation fewer at large N)
    peak, seconds, _ = memory.measured_peak(step, device)
    times.append(seconds)
    return {"status": "ok", "median_s": statistics.median(times), "times_s": times,
            "peak_bytes": peak, "input_bytes": 2 * x.numel() * x.element_size()}


def run_one(label: str, n: int, d: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", label, "--n", str(n), "--d", str(d),
               "--device", args.device, "--warmup", str(args.warmup),
               "--repeats", str(args.repeats)]
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--keops-path", args.keops_path] if args.keops_path else []
    limit = 120 + 3 * args.time_cap * (args.warmup + args.repeats)
    return common.run_worker(command, timeout=limit, tail_chars=200)


def predicted_skip(label: str, previous: dict | None, n: int, args) -> str | None:
    if not previous or previous.get("status") != "ok":
        return None
    growth = (n / previous["n"]) ** 2
    if previous["median_s"] * growth > args.time_cap:
        return f"predicted {previous['median_s'] * growth:.0f} s > cap {args.time_cap:.0f} s"
    if label in DENSE and previous["peak_bytes"] * growth > args.memory_cap * 2**30:
        gib = previous["peak_bytes"] * growth / 2**30
        return f"predicted {gib:.1f} GiB > cap {args.memory_cap} GiB (O(N^2) memory)"
    return None


def figure(out: Path, device: str) -> Path | None:
    """Time and peak memory against N, one line per method and d, from every
    ``full-<device>*.json`` in ``out`` (log-log): ``out/scaling-<device>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for path in sorted(out.glob(f"full-{device}*.json")):
        for r in json.loads(path.read_text())["results"]:
            if r["status"] == "ok":
                points.setdefault((r["method"], r["d"]), []).append(
                    (r["n"], r["median_s"], r["peak_bytes"] / 2**20))
    if not points:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (method, d), rows in sorted(points.items()):
        rows.sort()
        n, seconds, mib = zip(*rows, strict=True)
        look = {"color": COLOURS.get(method, "grey"), "marker": MARKERS.get(d, "o"),
                "linestyle": "-" if "online" in method else "--", "label": f"{method}, d={d}"}
        left.plot(n, seconds, **look)
        right.plot(n, [max(v, 1.0) for v in mib], **look)
    titles = ("forward + backward (s)", "peak memory above inputs (MiB)")
    for axis, title in zip((left, right), titles, strict=True):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("N (both samples)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"scaling-{device}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(report: dict) -> str:
    lines = [
        f"# Divergence scaling ({report['mode']}, {report['device']})",
        "",
        (f"{report['created']}; forward + backward, float32, median of {report['repeats']} "
         f"runs after {report['warmup']} warm-up. Regenerate with:"),
        "",
        f"    {report['command']}",
        "",
        common.machine_line(report),
        ("Peak memory: above the resident size with the inputs allocated "
         f"({report['memory_method']})."),
        "",
    ]
    rows = []
    for r in report["results"]:
        if r["status"] == "ok":
            cells = (f"{r['median_s']:.3g}", f"{r['peak_bytes'] / 2**20:.0f}", "")
        else:
            cells = ("-", "-", f"{r['status']}: {r['reason']}")
        rows.append((r["method"], r["n"], r["d"], *cells))
    lines += common.markdown_table(["method", "N", "d", "seconds", "peak MiB", "note"], rows,
                                   numeric=[False, True, True, True, True, False])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="N in {1024, 4096}, d = 8",
                           threads_help="torch CPU threads per worker")
    parser.add_argument("--sizes", nargs="+", type=int)
    parser.add_argument("--dims", nargs="+", type=int)
    parser.add_argument("--only", nargs="+", choices=sorted(METHODS), help="methods to run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--time-cap", type=float, default=600.0, help="seconds per evaluation")
    parser.add_argument("--memory-cap", type=float, default=6.0, help="GiB, dense methods")
    parser.add_argument("--tag", help="added to the results' file names (<mode>-<device>-<tag>)")
    parser.add_argument("--keops-path", help="a folder holding pykeops (pip install --target)")
    parser.add_argument("--share", metavar="PRESET:BATCH",
                        help="instead: each divergence's share of a training step, paired")
    parser.add_argument("--prior-samples", metavar="PRESET:BATCH",
                        help="instead: that training step with --sizes prior samples")
    parser.add_argument("--prior-pairs", type=int, default=2**20,
                        help="--prior-samples: the MMD's prior_pairs (default 2^20)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--d", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    args.device = common.default_device(args.device)
    if args.share:
        report = common.header(NAME, "share", argv, device=args.device, warmup=args.warmup,
                               repeats=args.repeats)
        report["share"] = in_step.share(args)
        stem = f"share-{args.device.split(':')[0]}" + (f"-{args.tag}" if args.tag else "")
        for path in common.write(report, args.out, in_step.share_markdown, stem=stem):
            print(f"wrote {path}")
        return 0
    if args.prior_samples:
        report = common.header(NAME, "prior-samples", argv, device=args.device,
                               warmup=args.warmup, repeats=args.repeats)
        report["prior_samples"] = in_step.prior_samples(args)
        stem = (f"prior-samples-{args.device.split(':')[0]}"
                + (f"-{args.tag}" if args.tag else ""))
        for path in common.write(report, args.out, in_step.prior_samples_markdown,
                                     stem=stem):
            print(f"wrote {path}")
        return 0
    mode = "quick" if args.quick else "full"
    sizes = args.sizes or ((1024, 4096) if args.quick else (1024, 4096, 16384, 65536))
    dims = args.dims or ((8,) if args.quick else (2, 8, 32))
    report = common.header(
        NAME, mode, argv, device=args.device, warmup=args.warmup, repeats=args.repeats,
        memory_method="cuda max_memory_allocated" if args.device.startswith("cuda") else
        "peak RSS (VmHWM reset via /proc/self/clear_refs) less the RSS before the evaluation",
        results=[],
    )
    for label in args.only or METHODS:
        for d in dims:
            previous, given_up = None, None
            for n in sorted(sizes):
                reason = given_up or predicted_skip(label, previous, n, args)
                result = {"status": "skipped", "reason": reason} if reason else run_one(
                    label, n, d, args)
                result = {"method": label, "n": n, "d": d, **result}
                report["results"].append(result)
                if result["status"] == "ok":
                    previous = result
                    shown = f"{result['median_s']:.3g} s, {result['peak_bytes'] / 2**20:.0f} MiB"
                else:
                    given_up, shown = f"{result['status']} at N={n}", result["reason"]
                print(f"{label:<26} N={n:<6} d={d:<3} {shown}", flush=True)
    stem = f"{mode}-{args.device.split(':')[0]}" + (f"-{args.tag}" if args.tag else "")
    for path in common.write(report, args.out, markdown, stem=stem):
        print(f"wrote {path}")
    drawn = figure(args.out, args.device.split(":")[0])
    if drawn:
        print(f"wrote {drawn} (from every full-*.json there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
