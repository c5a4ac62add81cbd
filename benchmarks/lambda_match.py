"""Useful ``weights.lambda_match`` per divergence: a small grid on the ``quickstart`` hierarchy.

Each divergence is trained at each value of ``lambda_match`` (one seed, a short budget) on
``mnist-5k``; everything else is the ``quickstart`` preset's. Per run it reports

* the last logged training values of ``rec_x`` and of the (unweighted) divergence ``match_z5``,
  and the weighted divergence's share of the objective;
* from :func:`hierot.evaluation.evaluate` on the test split: the held-out reconstruction error
  (mean squared error per pixel from z1), MMD and Sinkhorn between the encoded top latent and
  N(0, I) (with their prior-vs-prior floor), the top layer's linear-probe accuracy and the FCD.

The divergence's own value cannot be compared across divergences (their scales differ); the
held-out MMD and Sinkhorn to the prior are measured the same way for every run, so they can.

    python -m benchmarks lambda_match --threads 1                  # 5 x 5 runs of 800 steps
    python -m benchmarks lambda_match --quick --threads 1          # 2 x 2 runs of 100 steps

Writes ``benchmarks/results/lambda_match/<mode>.{json,md,csv}``; run directories go to
``benchmarks/results/lambda_match/runs/<mode>/`` (not committed). ``hierot sweep`` (issue 14)
will run such a grid as one command.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs

NAME = "lambda_match"
PRESET = "quickstart"
DIVERGENCES = {
    "mmd": {"name": "mmd"},
    "sinkhorn": {"name": "sinkhorn"},
    "sinkhorn-blur0.5": {"name": "sinkhorn", "blur": 0.5},
    "sliced-wasserstein": {"name": "sliced-wasserstein"},
    "wasserstein": {"name": "wasserstein"},
}
MODES = {
    "quick": {"steps": 100, "lambdas": [1e-4, 1e-2], "divergences": ["mmd", "sinkhorn"],
              "log_every": 20, "seed": 0},
    "full": {"steps": 800, "lambdas": [1e-4, 1e-3, 1e-2, 1e-1, 1.0],
             "divergences": list(DIVERGENCES), "log_every": 50, "seed": 0},
}


def run_one(overrides: list[str], out: Path) -> dict:
    """Train and evaluate one run directory; a failure is recorded, not raised."""
    import hierot
    from hierot.evaluation import evaluate

    common.log(f"train {out}")
    try:
        result = hierot.fit(PRESET, out=out, overrides=overrides)
        last = result.last_metrics
        match = next(k for k in last if k.startswith("match_"))
        common.log(f"eval {out}")
        ev = evaluate(out, samples=1000)
    except Exception as exc:  # noqa: BLE001 - the other runs go on
        return {"run_dir": str(out), "error": f"{type(exc).__name__}: {exc}"}
    top = ev["top_divergence"]
    return {
        "run_dir": str(out),
        "train_wall_s": round(result.wall_time, 1),
        "train_rec_x": last["rec_x"],
        "train_match": last[match],
        "match_share": last[f"w_{match}"] / last["total"],
        "test_rec_mse_z1": ev["reconstruction"]["mse"]["z1"],
        "test_rec_x": ev["objective"]["unweighted"]["rec_x"],
        "top_mmd": top.get("mmd"), "top_mmd_floor": top["floor"].get("mmd"),
        "top_sinkhorn": top.get("sinkhorn"), "top_sinkhorn_floor": top["floor"].get("sinkhorn"),
        "probe_top": ev["probe"].get("accuracy", {}).get(f"z{len(ev['latent_shapes'])}"),
        "probe_chance": ev["probe"].get("chance"),
        "fcd": ev["sample_quality"].get("fcd"),
        "fcd_floor": ev["sample_quality"].get("floor_fcd",
                                              ev["sample_quality"].get("floor_train_vs_test")),
    }


COLUMNS = ["divergence", "lambda_match", "train_rec_x", "train_match", "match_share",
           "test_rec_mse_z1", "top_mmd", "top_sinkhorn", "probe_top", "fcd"]


def markdown(report: dict) -> str:
    budget = report["budget"]
    lines = [
        f"# lambda_match per divergence ({report['mode']} mode)", "",
        f"{report['created']}; wall time {report['wall_time_s']} s. Regenerate with:", "",
        f"    {report['command']}", "",
        (f"Hierarchy: the `{PRESET}` preset (latents 32-16-8-4-2) on mnist-5k, "
         f"{budget['steps']} steps of batch 128, seed {budget['seed']}; only `divergence` and "
         "`weights.lambda_match` change. `rec_x`, `match` (the unweighted divergence) and the "
         "match share of the objective are the last logged training values; the rest is "
         "`hierot eval` on the test split: reconstruction "
         "MSE per pixel from z1, MMD and Sinkhorn (blur 0.05) between the encoded z5 and N(0, I) "
         f"(1,000 points each; floors, prior vs prior: MMD {fmt(report.get('floor_mmd'))}, "
         f"Sinkhorn {fmt(report.get('floor_sinkhorn'))}), linear-probe accuracy of z5 (chance "
         f"{fmt(report.get('probe_chance'))}) and the FCD of 1,000 samples (floor "
         f"{fmt(report.get('fcd_floor'))})."),
        "", common.machine_line(report), "",
        ("| divergence | lambda_match | rec_x | match | match share | test MSE z1 | MMD(z5, prior) "
        "| Sinkhorn(z5, prior) | probe z5 | FCD |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['divergence']} | {row['lambda_match']:g} | {row['error']} "
                         "| | | | | | | |")
            continue
        cells = [row["divergence"], f"{row['lambda_match']:g}"] + [fmt(row[c]) for c in COLUMNS[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Divergence options:", ""]
    lines += [f"- `{k}`: `{json.dumps(v)}`" for k, v in report["divergences"].items()]
    return "\n".join(lines) + "\n"


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="tiny budget: " + json.dumps(MODES["quick"]),
                           device_help="cpu, cuda (default: the preset's `auto`)")
    parser.add_argument("--divergences", nargs="+", choices=sorted(DIVERGENCES))
    parser.add_argument("--lambdas", nargs="+", type=float)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own process "
                             "(CPU: jobs * threads <= cores)")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    budget = dict(MODES[mode])
    budget.update({k: v for k, v in (("steps", args.steps), ("lambdas", args.lambdas),
                                     ("divergences", args.divergences), ("seed", args.seed))
                   if v is not None})
    threads = common.set_threads(args.threads)
    chosen = {label: DIVERGENCES[label] for label in budget["divergences"]}
    report = common.header(NAME, mode, argv, preset=PRESET, budget=budget, divergences=chosen,
                           torch_threads=threads, jobs=args.jobs)
    run_root = runs.fresh_dir(args.out / "runs" / mode)
    jobs, keys = [], []
    for label, options in chosen.items():
        for value in budget["lambdas"]:
            overrides = [f"divergence={json.dumps(options)}", f"seed={budget['seed']}",
                         f"weights.lambda_match={value}",
                         *runs.train_overrides(budget["steps"], budget["log_every"])]
            if args.device:
                overrides.append(f"device={args.device}")
            jobs.append((overrides, run_root / label / f"lambda-{value:g}"))
            keys.append((label, value))
    records = runs.run_parallel(run_one, jobs, args.jobs, args.threads)
    report["rows"] = [{"divergence": label, "lambda_match": value, **record}
                      for (label, value), record in zip(keys, records)]
    done = [r for r in report["rows"] if "error" not in r]
    if done:
        first = done[0]
        report.update(floor_mmd=first["top_mmd_floor"], floor_sinkhorn=first["top_sinkhorn_floor"],
                      probe_chance=first["probe_chance"], fcd_floor=first["fcd_floor"])
    written = common.write(report, args.out, markdown)
    table = args.out / f"{mode}.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + ["train_wall_s"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(done)
    for path in [*written, table]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
