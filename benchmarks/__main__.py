"""``python -m benchmarks NAME [options]``: run one benchmark (``--help`` after NAME for its
options).

Each writes its JSON and Markdown table (and figures, where it draws any) under
``benchmarks/results/NAME/``, with the command that regenerates them.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

BENCHMARKS = {
    "divergences": "time and memory of every registered divergence, forward + backward",
    "divergence_scaling": "mmd and sinkhorn as N grows: tensorized against online, time and memory",
    "sinkhorn_solves": "Sinkhorn at batch 128: tolerance against accuracy and time, warm starts",
    "train_step": "time of one training step of the presets against a plain PyTorch loop",
    "train_step_distributed": "data-parallel training step under torchrun-like process groups",
    "mmd_vs_sinkhorn": "one hierarchy trained with each top divergence, same budget, several seeds",
    "stacked_vs_flat": "the paper's ablation: StackedWAE against the flat WAE",
    "stacked_coverage": "sample fidelity and coverage of StackedWAE variants against the flat WAE",
    "lambda_match": "useful weights.lambda_match per divergence: a small grid on quickstart",
    "objectives": "StackedWAE, flat WAE, hierarchical VAE and Ladder VAE on one hierarchy",
    "precision_quality": "held-out quality of bf16 training against fp32 (3 seeds)",
    "bf16_tracking": "bf16 loss curves (weight copies, autocast) against fp32 seeds: 200 steps",
    "bf16_step_parts": "where the bf16 step's time goes: its passes over the weights, removed "
                       "in place and timed alone (per tensor, flat, compiled)",
    "trackers": "start-up and per-row cost of the TensorBoard, MLflow and W&B callbacks",
    "data_storage": "uint8 against float32 and streamed against in-memory training data",
    "train_feature_nets": "train the classifiers whose weights ship with hierot (features)",
    "ema_quality": "train.ema's averaged weights against the raw ones on the z8 preset (3 seeds)",
    "gpu_check": "every CUDA path once (precisions, compile, fused Adam, divergences, eval, "
                 "resume, nccl DDP, step ratios); --device cpu: the dry run",
    "match_batchnorm": "why the training log's top MMD is negative: BatchNorm couples a batch",
    "results_table": "the results page: 5 models x 2 data sets (x 2 divergences), resumable",
}


def usage() -> str:
    width = max(map(len, BENCHMARKS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, what in BENCHMARKS.items())
    return f"usage: python -m benchmarks NAME [--quick] [options]\n\nbenchmarks:\n{rows}\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0 if argv else 2
    name, rest = argv[0].replace("-", "_"), argv[1:]
    if name not in BENCHMARKS:
        import difflib

        close = difflib.get_close_matches(name, BENCHMARKS)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        print(f"unknown benchmark {argv[0]!r}{hint}\n\n{usage()}", file=sys.stderr, end="")
        return 2
    module = importlib.import_module(f"benchmarks.{name}")
    if inspect.signature(module.main).parameters:
        return module.main(rest)
    # Scripts whose main() reads sys.argv: hand them the arguments as if run directly.
    sys.argv = [str(Path(module.__file__)), *rest]
    return module.main()


if __name__ == "__main__":
    sys.exit(main())
