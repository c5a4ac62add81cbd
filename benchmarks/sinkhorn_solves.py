"""How far a Sinkhorn solve must go inside a step: stopping tolerance, annealing and warm starts.

At the paper's batch (``--batch`` encoded points against as many prior draws, ``x ~ N(0, I)``,
``y ~ N(0.5, I)`` as in ``benchmarks/divergences.py``, float64 so that round-off does not blur
the errors), for ``--seeds`` independent batches:

1. **Accuracy against time.** ``sinkhorn`` with ``backend: pot`` at each ``--tolerances`` (POT's
   ``stopThr``, the L2 error of the column marginal), and GeomLoss's fixed annealing loop (the
   ``geomloss`` and ``online`` backends: one update per epsilon, a count set by ``scaling``) at
   each ``--scalings``: the relative error of the value and of the gradient in ``x`` against a
   POT solve to ``--reference`` (tight), the cross term's iterations and the time of forward +
   backward. The spread of the reference value across the batches is the yardstick: an error
   well under it is lost in the batch-to-batch noise that training sees anyway.
2. **Warm starts carried across steps.** The dual potentials of the previous step's batch
   extrapolated onto the new one (``f`` by the soft c-transform of the old ``g`` on the old prior
   draws, then ``g`` by that of the new ``f``), against the backend's own warm start
   (epsilon-annealed potentials) and a cold start from zero: POT's iterations to reach each
   tolerance on the cross term OT(x, y), for a new batch of the same distributions.

    python -m benchmarks sinkhorn_solves --threads 1      # batch 128, d = 2, blur 0.05, 3 seeds

Writes ``benchmarks/results/sinkhorn_solves/<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common

NAME = "sinkhorn_solves"


def build(**options):
    from hierot.registry import divergences

    return divergences.build(divergences.tagged_options("sinkhorn")(name="sinkhorn", **options))


def batch(seed: int, n: int, d: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x, torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.5


def evaluate(divergence, x, y) -> tuple[float, object, float]:
    """Value, gradient in x and seconds of one forward + backward."""
    x = x.clone().requires_grad_(True)
    start = time.perf_counter()
    value = divergence(x, y)
    value.backward()
    return value.item(), x.grad, time.perf_counter() - start


def accuracy(args, seeds) -> tuple[list[dict], list[float]]:
    """Rows of (solver, seed): value and gradient errors against the tight reference, time."""
    solvers = {f"pot, tolerance {t:g}": {"backend": "pot", "tolerance": t, "max_iter": 10**6}
               for t in args.tolerances}
    solvers.update({f"geomloss loop, scaling {s:g}": {"backend": "geomloss", "scaling": s}
                    for s in args.scalings})
    rows, references = [], []
    for seed in seeds:
        x, y = batch(seed, args.batch, args.d)
        tight = build(backend="pot", blur=args.blur, tolerance=args.reference, max_iter=10**7)
        ref_value, ref_grad, ref_s = evaluate(tight, x, y)
        references.append(ref_value)
        common.log(f"seed {seed}: reference {ref_value:.5g} ({tight.iterations[0]} iterations, "
                   f"{ref_s:.1f} s)")
        for label, options in solvers.items():
            divergence = build(blur=args.blur, **options)
            value, grad, _ = evaluate(divergence, x, y)  # warm-up (allocations, imports)
            value, grad, seconds = evaluate(divergence, x, y)
            rows.append({
                "solver": label, "seed": seed, "value": value, "reference": ref_value,
                "value_error": abs(value - ref_value) / abs(ref_value),
                "gradient_error": float((grad - ref_grad).norm() / ref_grad.norm()),
                "seconds": seconds,
                "iterations": (getattr(divergence, "iterations", None) or [None])[0],
            })
    return rows, references


def carried_start(x_old, y_old, x, y, eps: float, tolerance: float):
    """Potentials of OT(x_old, y_old) solved to ``tolerance``, extrapolated onto (x, y), as POT's
    log-scalings: f(x) = T(g_old on y_old)(x), then g(y) = T(f on x)(y)."""
    import ot
    import torch

    from hierot.divergences.tiled import softmin

    n = len(x)
    log_w = x.new_full((n,), -float(torch.log(torch.tensor(float(n)))))
    a = log_w.exp()
    old_cost = torch.cdist(x_old, y_old) ** 2 / 2
    _, log = ot.bregman.sinkhorn_log(a, a, old_cost, reg=eps, numItermax=10**6,
                                     stopThr=tolerance, log=True, warn=False)
    g_old = eps * (log["log_v"] - log_w)  # POT's log v = log b + g / eps
    f = softmin(x, y_old, log_w + g_old / eps, eps, p=2, tile_size=4096)
    g = softmin(y, x, log_w + f / eps, eps, p=2, tile_size=4096)
    return log_w + f / eps, log_w + g / eps


def warm_starts(args, seeds) -> list[dict]:
    """POT's iterations on the cross term of a new batch from three starting points."""
    import ot
    import torch

    from hierot.divergences.sinkhorn import annealed_potentials, epsilon_schedule

    eps = args.blur**2
    rows = []
    for seed in seeds:
        x_old, y_old = batch(1000 + seed, args.batch, args.d)
        x, y = batch(seed, args.batch, args.d)
        cost = torch.cdist(x, y) ** 2 / 2
        a = cost.new_full((len(x),), 1.0 / len(x))
        schedule = epsilon_schedule(cost.max().item(), eps, 0.5**2)
        f, g = annealed_potentials(cost, a.log(), a.log(), schedule, symmetric=False)
        starts = {"annealed (the backend's)": (a.log() + f / eps, a.log() + g / eps),
                  "carried from the previous batch": carried_start(x_old, y_old, x, y, eps,
                                                                   min(args.tolerances)),
                  "zero (cold)": None}
        for tolerance in args.tolerances:
            for label, start in starts.items():
                _, log = ot.bregman.sinkhorn_log(a, a, cost, reg=eps, numItermax=10**6,
                                                 stopThr=tolerance, warmstart=start, log=True,
                                                 warn=False)
                rows.append({"start": label, "seed": seed, "tolerance": tolerance,
                             "iterations": int(log["niter"]) + 1})
    return rows


def summary(rows: list[dict], key: str, fields: list[str]) -> dict:
    grouped: dict = {}
    for r in rows:
        grouped.setdefault(r[key] if isinstance(key, str) else key(r), []).append(r)
    return {k: {f: statistics.median(r[f] for r in group) for f in fields}
            | {f"{f}_max": max(r[f] for r in group) for f in fields}
            for k, group in grouped.items()}


def markdown(report: dict) -> str:
    spread = report["reference_spread"]
    lines = [
        f"# Sinkhorn solves at batch {report['batch']}, d = {report['d']}, blur {report['blur']}",
        "", f"{report['created']}; {len(report['seeds'])} seeds; float64. Regenerate with:", "",
        f"    {report['command']}", "", common.machine_line(report), "",
        (f"Reference: `backend: pot` to tolerance {report['reference_tolerance']:g}; its value "
         f"across the batches: mean {spread['mean']:.4g}, standard deviation {spread['std']:.3g} "
         f"({100 * spread['std'] / spread['mean']:.0f} % of the mean)."), "",
        "## Accuracy against time (medians over the seeds; max in brackets)", "",
    ]
    rows = [(label, f"{100 * s['value_error']:.2g} % ({100 * s['value_error_max']:.2g} %)",
             f"{100 * s['gradient_error']:.2g} % ({100 * s['gradient_error_max']:.2g} %)",
             "-" if s.get("iterations") is None else f"{s['iterations']:.0f}",
             f"{1e3 * s['seconds']:.1f}")
            for label, s in report["accuracy_summary"].items()]
    lines += common.markdown_table(["solver", "value error", "gradient error",
                                    "cross-term iterations", "forward + backward ms"], rows)
    lines += ["", "## Warm starts: POT's iterations on the cross term of a new batch", ""]
    rows = [(start, f"{tol:g}", f"{s['iterations']:.0f}", f"{s['iterations_max']:.0f}")
            for (start, tol), s in report["warm_start_summary"].items()]
    lines += common.markdown_table(["start", "tolerance", "median iterations", "max"], rows)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="2 seeds, two tolerances, reference 1e-5")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--d", type=int, default=2, help="dimension (the paper's top latent: 2)")
    parser.add_argument("--blur", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--tolerances", type=float, nargs="+")
    parser.add_argument("--scalings", type=float, nargs="+", default=[0.5, 0.9, 0.99])
    parser.add_argument("--reference", type=float, help="tolerance of the reference solve")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    mode = "quick" if args.quick else "full"
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    args.tolerances = args.tolerances or ([1e-2, 1e-3] if args.quick else [1e-2, 1e-3, 1e-4])
    args.reference = args.reference or (1e-5 if args.quick else 1e-6)
    report = common.header(NAME, mode, argv, device="cpu", batch=args.batch, d=args.d,
                           blur=args.blur, seeds=seeds, reference_tolerance=args.reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # max_iter warnings: not reached here
        accuracy_rows, references = accuracy(args, seeds)
    report["accuracy"] = accuracy_rows
    report["reference_spread"] = {"mean": statistics.mean(references),
                                  "std": statistics.stdev(references) if len(seeds) > 1 else 0.0}
    fields = ["value_error", "gradient_error", "seconds"]
    report["accuracy_summary"] = summary(accuracy_rows, "solver", fields)
    for label, s in report["accuracy_summary"].items():
        counts = [r["iterations"] for r in accuracy_rows if r["solver"] == label]
        s["iterations"] = statistics.median(counts) if None not in counts else None
    report["warm_starts"] = warm_starts(args, seeds)
    warm = summary(report["warm_starts"], lambda r: (r["start"], r["tolerance"]), ["iterations"])
    report["warm_start_summary"] = warm
    for path in common.write({**report, "warm_start_summary": {f"{k[0]} @ {k[1]:g}": v
                                                                for k, v in warm.items()}},
                             args.out, lambda _: markdown(report), stem=mode):
        print(f"wrote {path}")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
