"""Quality under mixed precision: ``train.precision: bf16`` against fp32, same seeds and budget.

Each seed trains the preset in fp32 and in bf16 (autocast; costs and divergence in fp32) for the
same steps on ``mnist-5k``, then is evaluated on the test split, in fp32 and eval mode:

* the objective's terms (``hierot.evaluation.objective_terms``, batches of 128, seed 0):
  every reconstruction term c_n and the top divergence;
* the squared error of x reconstructed from every encoding depth z_1 ... z_N;
* the linear-probe accuracy of the labels from every latent layer (``linear_probe``).

A bf16 number is "within the fp32 spread" when it lies in [min, max] of the fp32 seeds widened by
nothing: with 3 seeds that range is the honest check the issue asks for (the table also gives the
mean and sample standard deviation of each precision). Seconds per step are the medians of the
logging intervals (``metrics.csv``), on whatever else the machine was doing.

    python -m benchmarks precision_quality --threads 1    # quickstart, 1500 steps, 3 seeds
    python -m benchmarks precision_quality --preset mnist-stackedwae.v1 --threads 1
    python -m benchmarks precision_quality --threads 1 --fused --mode quickstart-fused

``--fused`` adds a third arm, ``bf16-fused``: bf16 with ``train.fused_update`` (Adam from the
bf16 gradients in one C kernel, docs/precision.md).

Writes ``benchmarks/results/precision_quality/<mode>.json`` and ``.md``; run directories go to
``benchmarks/results/precision_quality/runs/<mode>/`` (not committed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs

NAME = "precision_quality"
PRECISIONS = ("fp32", "bf16")
ARMS = {"fp32": ["train.precision=fp32"], "bf16": ["train.precision=bf16"],
        "bf16-fused": ["train.precision=bf16", "train.fused_update=true"]}
"""Each arm's overrides (``--fused`` adds ``bf16-fused`` to :data:`PRECISIONS`)."""


def train_and_evaluate(preset: str, precision: str, seed: int, steps: int, out: Path) -> dict:
    """Train one run and return its held-out metrics (flat name -> value) and timing."""
    import torch

    import hierot
    from hierot.evaluation import (
        encode,
        linear_probe,
        load_run,
        objective_terms,
        reconstruction_errors,
        subset,
    )

    run_dir = out / f"{precision}-seed{seed}"
    overrides = [*runs.train_overrides(steps, 100), f"seed={seed}", "data={name: mnist-5k}",
                 *ARMS[precision]]
    common.log(f"train {run_dir.name}")
    hierot.fit(preset, out=run_dir, overrides=overrides)
    run = load_run(run_dir, device="cpu")
    metrics: dict[str, float] = {}
    with torch.no_grad():
        terms = objective_terms(run.built.objective, run.data.test_x, 128, seed=0)
    metrics.update({f"test_{k}": v for k, v in terms["unweighted"].items()})
    recon = reconstruction_errors(run.model, run.data.test_x)
    metrics.update({f"recon_x_from_{k}": v for k, v in _flat(recon).items()})
    rows = subset(len(run.data.train_x), 10000, 0)
    train_codes = encode(run.model, run.data.train_x[rows])
    test_codes = encode(run.model, run.data.test_x)
    for i in range(run.depth):
        metrics[f"probe_z{i + 1}"] = linear_probe(train_codes[i], run.data.train_y[rows],
                                                  test_codes[i], run.data.test_y)
    return {"precision": precision, "seed": seed, "run": run_dir.name, "metrics": metrics,
            "seconds_per_step": runs.seconds_per_step(run_dir)}


def _flat(recon: dict) -> dict[str, float]:
    """The per-depth squared errors of ``reconstruction_errors`` (``{"z1": value, ...}``)."""
    return {k: float(v) for k, v in recon["l2sq"].items()}


def summarise(results: list[dict]) -> dict:
    names = list(results[0]["metrics"])
    arms = list(dict.fromkeys(r["precision"] for r in results))
    table = {}
    for name in names:
        by = {p: [r["metrics"][name] for r in results if r["precision"] == p] for p in arms}
        lo, hi = min(by["fp32"]), max(by["fp32"])
        table[name] = {"fp32": runs.mean_std(by["fp32"]), "fp32_range": [lo, hi]}
        for arm in arms[1:]:
            mean = sum(by[arm]) / len(by[arm])
            table[name] |= {arm: runs.mean_std(by[arm]),
                            f"{arm}_mean_within_fp32_range": lo <= mean <= hi,
                            f"{arm}_all_within_fp32_range": all(lo <= v <= hi for v in by[arm])}
    steps = {p: runs.mean_std([r["seconds_per_step"]["median_s"] for r in results
                               if r["precision"] == p]) for p in arms}
    return {"metrics": table, "seconds_per_step": steps}


def markdown(report: dict) -> str:
    s = report["summary"]
    arms = list(s["seconds_per_step"])
    others = arms[1:]
    lines = [
        (f"# Quality under bf16 ({report['mode']}): {report['preset']} on mnist-5k, "
        f"{report['steps']} steps, seeds {report['seeds']}"),
        "",
        f"{report['created']}; `{report['command']}`; wall time {report['wall_time_s']} s.",
        common.machine_line(report),
        "",
        ("Held-out numbers (test split, fp32 evaluation, eval mode). fp32 range: [min, max] over "
        "the fp32 seeds; 'bf16 mean in range': whether the bf16 mean lies in it."),
        "",
        *common.markdown_table(
            ["metric", *(f"{a} (mean ± std)" for a in arms), "fp32 range",
             *(f"{a} {what}" for a in others for what in ("mean in range", "every seed in range"))],
            [(name, *(runs.fmt(row[a], 4) for a in arms),
              f"{row['fp32_range'][0]:.4g} - {row['fp32_range'][1]:.4g}",
              *("yes" if row[f"{a}_{what}_within_fp32_range"] else "no"
                for a in others for what in ("mean", "all")))
             for name, row in s["metrics"].items()]),
    ]
    st = s["seconds_per_step"]
    speed = ", ".join(f"{a} {runs.fmt(st[a], 3)}" for a in arms)
    lines += ["", (f"Seconds per step (median of logging intervals, mean ± std over seeds): "
              f"{speed}."), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mode", default=None, help="name of the result files (default: preset)")
    parser.add_argument("--fused", action="store_true",
                        help="also train bf16 with train.fused_update (arm bf16-fused)")
    args = parser.parse_args()
    common.set_threads(args.threads)
    mode = args.mode or args.preset
    report = common.header(NAME, mode, sys.argv[1:], preset=args.preset, steps=args.steps,
                           seeds=args.seeds)
    out = runs.fresh_dir(common.RESULTS / NAME / "runs" / mode)
    results = [train_and_evaluate(args.preset, p, seed, args.steps, out)
               for seed in args.seeds
               for p in (*PRECISIONS, *(["bf16-fused"] if args.fused else []))]
    report["results"] = results
    report["summary"] = summarise(results)
    for path in common.write(report, common.RESULTS / NAME, markdown):
        common.log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
