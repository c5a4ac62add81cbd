"""What ``train.ema`` does to sample quality and the hierarchy: the same runs evaluated with the
averaged weights and with the raw ones.

``mnist-stackedwae-z8.v1`` at the ``stacked_coverage`` budget (``mnist-5k``, hidden widths / 4,
1,000 steps, seeds 0 1 2) with ``train.ema`` on; each run is evaluated by
:func:`hierot.evaluation.evaluate` three times (:data:`ARMS`): the averaged weights with the
BatchNorm statistics recomputed for them, the averaged weights with the raw model's statistics,
and the raw weights, on the prior's ancestral samples: FCD, precision, recall, coverage, and the
z5 linear probe. The training is the same for all three (the average does not feed back), so the
differences are the average's and its statistics' alone.

    python -m benchmarks ema_quality --threads 1
    python -m benchmarks ema_quality --threads 1 --decay 0.999 --start-step 500 --tag d0.999
    python -m benchmarks ema_quality --threads 2 --shrink 1 --steps 2500 --decay 0.999 \
        --start-step 500 --tag full   # the paper's widths at the stacked-vs-flat budget

Writes ``benchmarks/results/ema_quality/<tag>.json`` and ``.md``; run directories go to
``.../runs/<tag>/`` (not committed).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs

NAME = "ema_quality"
PRESET = "mnist-stackedwae-z8.v1"
METRICS = ("fcd", "precision", "recall", "coverage", "probe_z5")


ARMS = ("ema", "ema-raw-bn", "raw")
"""The averaged weights with their recomputed BatchNorm statistics (``train.ema.batchnorm:
recompute``, the default), the averaged weights with the raw model's statistics (the ``raw``
rule, read from the same checkpoint), and the raw weights."""


def measure(run_dir: Path, arm: str, device: str | None) -> dict:
    from hierot.evaluation import evaluate, load_run

    loaded = load_run(run_dir, device=device, weights="raw" if arm == "raw" else "ema")
    if arm == "ema-raw-bn":  # the average beside the raw model's running statistics
        raw = loaded.run_dir.load_checkpoint()["model"]  # the checkpoint load_run read
        buffers = dict(loaded.model.named_buffers())
        with torch.no_grad():
            for name, buffer in buffers.items():
                buffer.copy_(raw[name])
    result = evaluate(loaded, samplers=["prior"], write=False)
    block = result["sample_quality"]["samplers"]["prior"]["ancestral"]
    return {"fcd": block["fcd"], "precision": block["precision"], "recall": block["recall"],
            "coverage": block["coverage"],
            "probe_z5": result["probe"].get("accuracy", {}).get("z5")}


def markdown(report: dict) -> str:
    rows = []
    arms = [a for a in ARMS if a in report["runs"][0]]
    for weights in arms:
        values = [r[weights] for r in report["runs"]]
        rows.append([weights, *[
            f"{statistics.mean(v[m] for v in values):.3f} ± "
            f"{statistics.stdev(v[m] for v in values) if len(values) > 1 else 0.0:.3f}"
            for m in METRICS]])
    per_seed = [[r["seed"], w, *[f"{r[w][m]:.3f}" for m in METRICS]]
                for r in report["runs"] for w in arms]
    return "\n".join([
        *common.report_intro(report, "EMA weights against raw weights",
                             f"`{PRESET}` on mnist-5k, {report['steps']} steps of batch 128, "
                             f"hidden widths / {report.get('shrink', 4)}, with "
                             f"`train.ema={report['ema']}`; each run evaluated with the "
                             f"averaged weights and their recomputed BatchNorm statistics "
                             f"(ema), the averaged weights with the raw model's statistics "
                             f"(ema-raw-bn) and the raw weights (raw); prior, ancestral "
                             f"samples. Mean ± sample sd over seeds."),
        *common.markdown_table(["weights", *METRICS], rows),
        "",
        *common.markdown_table(["seed", "weights", *METRICS], per_seed),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="2 seeds, 200 steps")
    parser.add_argument("--decay", type=float, default=0.995)
    parser.add_argument("--start-step", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--shrink", type=int, default=4,
                        help="divide every hidden width by this (1: the paper's widths)")
    parser.add_argument("--tag", default="reduced")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    seeds, steps = (args.seeds[:2], 200) if args.quick else (args.seeds, args.steps)
    ema = f"{{decay: {args.decay}, start_step: {args.start_step}}}"
    report = common.header(NAME, "quick" if args.quick else "full", argv, device=args.device,
                           preset=PRESET, ema=ema, steps=steps, seeds=seeds, shrink=args.shrink,
                           runs=[])
    root = runs.fresh_dir(args.out / "runs" / args.tag)
    for seed in seeds:
        run_dir = root / f"seed-{seed}"
        overrides = ["data={name: mnist-5k}", f"seed={seed}",
                     *runs.width_overrides(PRESET, args.shrink),
                     *runs.train_overrides(steps, 100), f"train.ema={ema}"]
        if args.device:
            overrides.append(f"device={args.device}")
        import hierot

        common.log(f"train {run_dir}")
        hierot.fit(PRESET, out=run_dir, overrides=overrides)
        record = {"seed": seed, "run_dir": str(run_dir.relative_to(args.out))}
        for weights in ARMS:
            common.log(f"eval {run_dir} ({weights})")
            record[weights] = measure(run_dir, weights, args.device)
        report["runs"].append(record)
        common.log(f"seed {seed}: " + ", ".join(f"{arm} {record[arm]}" for arm in ARMS))
    for path in common.write(report, args.out, markdown, stem=args.tag):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
