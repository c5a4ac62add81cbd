"""Does bf16 training still track fp32? A short check of the loss curves (not precision_quality).

The preset (default ``quickstart`` on the 5,000 embedded MNIST digits) is trained for ``--steps``
steps in fp32 with each seed of ``--seeds``, and in bf16 with the first seed twice: with the
trainer's bfloat16 weight copies (``hierot/training/weight_copies.py``, what ``train.precision:
bf16`` runs) and with autocast's per-use casts (the copies switched off: the step before them).
Reported: the training objective averaged over windows of ``--window`` steps, the held-out
objective at the end (the test split, in the training precision), whether each bf16 value lies
inside the [min, max] range of the fp32 seeds, and whether the two bf16 runs agree to the bit.
With ``--fused`` every seed also trains in bf16 twice more: with the weight copies (the default
bf16 step) and with ``train.fused_update`` (Adam from the bf16 gradients in one C kernel: float32
rounding apart, the same arithmetic, so not to the bit), and the seeds' range and mean of each
are set beside the fp32 seeds'. It measures the training curve only; the sample-quality
metrics over 1,500 steps and 3 seeds are ``python -m benchmarks precision_quality`` (about an
hour on 2 busy cores).

    python -m benchmarks bf16_tracking --threads 1              # quickstart, 200 steps
    python -m benchmarks bf16_tracking --preset mnist-stackedwae.v1 --steps 100
    python -m benchmarks bf16_tracking --threads 1 --fused --out /tmp/bf16-fused

Writes ``benchmarks/results/bf16_tracking/<preset>.json`` and ``.md``.
"""

from __future__ import annotations

import sys
import time

import torch

import hierot
from benchmarks import _common as common
from hierot.training import Trainer, single_process

NAME = "bf16_tracking"


def run(preset: str, precision: str, seed: int, steps: int, window: int,
        copies: bool = True, fused: bool = False) -> dict:
    """Train ``steps`` steps; the windowed means of the objective and the held-out terms."""
    spec = hierot.load_spec(preset, [f"seed={seed}", f"train.precision={precision}",
                                     f"train.steps={steps}", f"train.eval_every={steps}",
                                     "train.progress=false", "device=cpu",
                                     *(["train.fused_update=true"] if fused else [])])
    trainer = Trainer(hierot.build(spec), None, single_process("cpu"))
    if not copies:
        trainer.copies = trainer.updates.copies = None
    totals, started = [], time.perf_counter()
    while trainer.step < steps:
        values = trainer._train_step()
        trainer.step += 1
        totals.append(float("nan") if values is None else float(values["total"]))
    seconds = (time.perf_counter() - started) / steps
    assert trainer.heldout is not None
    held_out = trainer.heldout()
    means = [sum(totals[i:i + window]) / len(totals[i:i + window])
             for i in range(0, steps, window)]
    final = [p.detach().clone() for p in trainer.model.parameters()]
    return {"precision": precision, "seed": seed, "copies": copies, "fused": fused,
            "window_means": means,
            "val_total": held_out["val_total"], "val_rec_x": held_out["val_rec_x"],
            "seconds_per_step": seconds, "_final": final, "_totals": totals}


def summarise(results: list[dict]) -> dict:
    fp32 = [r for r in results if r["precision"] == "fp32"]
    bf16 = [r for r in results if r["precision"] == "bf16" and r["seed"] == fp32[0]["seed"]
            and not r.get("fused")]  # the first seed, with the copies and autocast's casts
    seeds = {"bf16": [r for r in results if r["precision"] == "bf16" and r["copies"]
                      and not r.get("fused")],
             "fused": [r for r in results if r.get("fused")]}
    keys = [f"window {i + 1}" for i in range(len(fp32[0]["window_means"]))]
    rows = {}
    for i, key in enumerate(keys + ["val_total", "val_rec_x"]):
        pick = (lambda r, i=i: r["window_means"][i]) if i < len(keys) else (
            lambda r, key=key: r[key])
        low, high = min(map(pick, fp32)), max(map(pick, fp32))
        rows[key] = {"fp32_min": low, "fp32_max": high,
                     **{("bf16_copies" if r["copies"] else "bf16_autocast"): pick(r)
                        for r in bf16}}
        rows[key]["inside"] = all(low <= pick(r) <= high for r in bf16)
        for name, runs in seeds.items():
            if len(runs) > 1:  # --fused: every seed
                values = list(map(pick, runs))
                mean = sum(values) / len(values)
                rows[key][name] = {"min": min(values), "max": max(values), "mean": mean,
                                   "mean_inside": low <= mean <= high}
    same = (len(bf16) == 2 and bf16[0]["_totals"] == bf16[1]["_totals"]
            and all(torch.equal(a, b) for a, b in zip(bf16[0]["_final"], bf16[1]["_final"])))
    return {"rows": rows, "bf16_copies_equal_autocast_bitwise": same}


def markdown(report: dict) -> str:
    s = report["summary"]
    fused = any("fused" in v for v in s["rows"].values())
    rows = [(k, f"{v['fp32_min']:.5g}-{v['fp32_max']:.5g}", f"{v.get('bf16_copies', 0):.5g}",
             f"{v.get('bf16_autocast', 0):.5g}", "yes" if v["inside"] else "no",
             *([_seeds(v, "bf16"), _seeds(v, "fused")] if fused else []))
            for k, v in s["rows"].items()]
    speed = ", ".join(f"{r['precision']}{'' if r['copies'] else ' autocast'}"
                      f"{' fused' if r.get('fused') else ''} seed {r['seed']}: "
                      f"{1e3 * r['seconds_per_step']:.0f} ms" for r in report["results"])
    return "\n".join([
        *common.report_intro(report, f"bf16 tracking fp32: {report['preset']}",
                             f"{report['steps']} steps; fp32 seeds {report['seeds']}; bf16 seed "
                             f"{report['seeds'][0]} with the weight copies and with autocast's "
                             f"casts. Windows of {report['window']} steps."),
        *common.markdown_table(["objective", "fp32 range", "bf16 (copies)",
                                "bf16 (autocast casts)", "bf16 inside the fp32 range",
                                *(["bf16, every seed: range (mean)",
                                    "fused update, every seed: range (mean)"]
                                  if fused else [])], rows),
        *(["", ("Every seed (`--fused`): a mean marked * lies outside the fp32 range.")]
          if fused else []),
        "",
        (f"bf16 with copies equal to bf16 with autocast's casts, every step's objective and "
         f"the final weights, to the bit: **{s['bf16_copies_equal_autocast_bitwise']}**."),
        "",
        f"Seconds per step (unpaired, shared machine): {speed}.",
    ]) + "\n"


def _seeds(row: dict, name: str) -> str:
    r = row[name]
    mark = "" if r["mean_inside"] else "*"
    return f"{r['min']:.5g}-{r['max']:.5g} ({r['mean']:.5g}{mark})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="50 steps, 2 fp32 seeds")
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fused", action="store_true",
                        help="also train every seed in bf16, with and without "
                        "train.fused_update")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.window, args.seeds = 50, 25, args.seeds[:2]
    common.set_threads(args.threads)
    report = common.header(NAME, args.preset, argv, device="cpu", preset=args.preset,
                           steps=args.steps, window=args.window, seeds=args.seeds)
    results = [run(args.preset, "fp32", seed, args.steps, args.window) for seed in args.seeds]
    results += [run(args.preset, "bf16", args.seeds[0], args.steps, args.window, copies)
                for copies in (True, False)]
    if args.fused:
        results += [run(args.preset, "bf16", seed, args.steps, args.window)
                    for seed in args.seeds[1:]]
        results += [run(args.preset, "bf16", seed, args.steps, args.window, fused=True)
                    for seed in args.seeds]
    report["summary"] = summarise(results)
    report["results"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    for path in common.write(report, args.out, markdown):
        print(f"wrote {path}")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
