"""Why the training log's ``match_z5`` is negative while the held-out MMD is positive.

The unbiased MMD estimate (a U-statistic) is unbiased only for independent samples. In train
mode, BatchNorm normalises every hidden layer of the encoders with the statistics of the batch
itself, so the codes of one batch are not independent: they are spread out together (their batch
mean and variance are fixed at every layer). The mean kernel value between two codes of the same
batch then falls below its value for independent codes, and the estimate is biased downwards. This
script measures it on a trained run, paired (same examples, same prior draws):

* train mode, one batch: the codes of one batch against as many prior draws (what the training
  log shows), and the same in eval mode (running statistics: what the held-out evaluation shows);
* the estimate between the codes of two batches of the same model and mode: both have the same
  distribution, so its expectation is 0 for independent codes, and below 0 when the codes of a
  batch are coupled.

    python -m benchmarks match_batchnorm RUN_DIR [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys

import torch


def _mean_se(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "se": statistics.stdev(values) / len(values) ** 0.5,
            "negative": sum(v < 0 for v in values), "n": len(values)}


def measure(run: str, repeats: int = 5) -> dict:
    """Paired MMD estimates on every full training batch, ``repeats`` shuffles of the data."""
    from hierot.evaluation import load_run

    loaded = load_run(run, device="cpu")
    objective, x, batch = loaded.built.objective, loaded.data.train_x, loaded.spec.train.batch_size
    divergence = objective.divergence
    trained = copy.deepcopy(objective).train()  # its BatchNorm running stats move: a copy
    objective.eval()
    n_batches = len(x) // batch
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    with torch.no_grad():
        for r in range(repeats):
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(r))
            codes: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}
            for b in range(n_batches):
                xb = x[order[b * batch:(b + 1) * batch]]
                for mode, model in (("train", trained), ("eval", objective)):
                    torch.manual_seed(1000 * r + b)  # the same noise in both modes
                    codes[mode].append(model.encode(xb)[1][-1].flatten(1))
            for b in range(n_batches):
                prior = torch.randn(batch, codes["eval"][b].shape[1],
                                    generator=torch.Generator().manual_seed(10_000 * (r + 1) + b))
                one, ev = codes["train"][b], codes["eval"][b]
                d_one, d_eval = float(divergence(one, prior)), float(divergence(ev, prior))
                add(f"{batch} codes: train mode, one batch (the training log)", d_one)
                add(f"{batch} codes: eval mode (the held-out evaluation)", d_eval)
                add(f"{batch} codes: train one batch - eval (paired)", d_one - d_eval)
                # two batches of the same model and mode: the same distribution, so the
                # estimate's expectation is 0 for independent codes; below 0, the codes of one
                # batch are closer to independent draws than to each other (coupled)
                nxt = (b + 1) % n_batches
                for mode in ("train", "eval"):
                    add(f"{batch} codes: {mode} mode, batch against the next batch (0 if "
                        f"independent)", float(divergence(codes[mode][b], codes[mode][nxt])))
    return {"run": run, "batch_size": batch, "batches": n_batches, "repeats": repeats,
            "summary": {name: _mean_se(v) for name, v in rows.items()},
            "load_average": os.getloadavg()}


def markdown(result: dict) -> str:
    lines = ["# match_batchnorm: the top MMD estimate in train and eval mode", "",
             (f"Run `{result['run_command']}`, then `{result['command']}` (hierot "
              f"{result['commit']}; load average {result['load_average'][0]:.1f}, "
              f"{result['repeats']} shuffles x {result['batches']} batches of "
              f"{result['batch_size']})."), "",
             "| estimate | mean | se | negative |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['mean']:+.5f} | {s['se']:.5f} | {s['negative']} of {s['n']} |"
              for name, s in result["summary"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import subprocess
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m benchmarks match_batchnorm")
    parser.add_argument("run", help="a run directory of the stacked-wae objective")
    parser.add_argument("--repeats", type=int, default=5, help="shuffles of the training set")
    parser.add_argument("--run-command", default="hierot train quickstart --set train.steps=600 "
                        "--set train.checkpoint_every=600 --out RUN",
                        help="how the run was made (recorded in the report)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "match_batchnorm")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.run, args.repeats)
    result["command"] = "python -m benchmarks match_batchnorm RUN"
    result["run_command"] = args.run_command
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], text=True, capture_output=True,
        cwd=Path(__file__).parent, check=False).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "match_batchnorm.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "match_batchnorm.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
