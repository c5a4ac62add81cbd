"""The evaluation sub-commands of ``hierot``; importing this module registers them.

::

    hierot eval RUN_DIR [--checkpoint STEP|best] [--weights ema|raw] [--device D] [--samples N]
                        [--sampler S ...]
    hierot plot RUN_DIR [--checkpoint STEP|best] [--weights ema|raw] [--device D]
                        [--embedding pca|umap]
    hierot sample RUN_DIR -n N --out FILE [--checkpoint STEP|best] [--weights ema|raw] [--seed S]
                        [--sampler S] [--path P]
    hierot report RUN_DIR
    hierot compare RUN_OR_GLOB ... [--baseline B] [--sampler S] [--out FILE.md] [--json FILE]

Heavy modules (torch models, matplotlib, scikit-learn, UMAP) are imported inside each command,
so registering them costs nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hierot.cli._command import command
from hierot.errors import HierotError


def _checkpoint(text: str) -> int | str:
    """``--checkpoint``: a step number or ``best``."""
    if text == "best":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a step number nor 'best'") from None


def _at_least_one(text: str) -> int:
    """A count option (``--samples``): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_arguments(parser: argparse.ArgumentParser, *, seed: str | None = None) -> None:
    """RUN_DIR, ``--checkpoint`` and ``--device``; ``--seed`` too when ``seed`` says what it
    seeds."""
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory written by `hierot train`")
    parser.add_argument("--checkpoint", type=_checkpoint, metavar="STEP|best",
                        help="the step of the checkpoint to use, or `best` for checkpoints/best.pt "
                             "(written when train.eval_every is set; default: the last step)")
    parser.add_argument("--weights", choices=["ema", "raw"],
                        help="ema: the moving average of the weights (train.ema); raw: the "
                             "trained weights (default: ema when the run kept one, else raw)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the spec's device)")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help=f"seed of {seed} (default 0)")


# -- eval ------------------------------------------------------------------------------------------
def evaluate_run(args: argparse.Namespace) -> int:
    from hierot.api import evaluate
    from hierot.evaluation.evaluator import EVAL_FILE, format_table

    result = evaluate(args.run_dir, args.checkpoint, device=args.device, samples=args.samples,
                      seed=args.seed, samplers=args.sampler or ["prior"], features=args.features,
                      resamples=args.resamples, per_layer=not args.no_per_layer,
                      weights=args.weights)
    print(format_table(result))
    print(f"written {Path(args.run_dir) / EVAL_FILE}")
    return 0


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser, seed="every random draw")
    parser.add_argument("--samples", type=_at_least_one, default=10_000, metavar="N",
                        help="generated samples per sampler and path, against a reference set "
                             "of at most N points: the test split when it holds N, else the "
                             "larger split (default 10000)")
    parser.add_argument("--features", default="classifier", metavar="EXTRACTOR",
                        help="feature space of the sample metrics: classifier (shipped weights "
                             "for mnist-5k, mnist, fashion-mnist, digits), or a YAML mapping "
                             "such as '{name: inception, weights: FILE}' or "
                             "'{name: dinov2, weights: FILE}' (default classifier)")
    parser.add_argument("--resamples", type=int, default=200, metavar="B",
                        help="bootstrap resamples of every 95 %% interval (default 200)")
    parser.add_argument("--no-per-layer", action="store_true",
                        help="skip the metrics of held-out data regenerated from every depth")
    parser.add_argument("--sampler", action="append", metavar="SAMPLER",
                        help="sampler of the top latent whose samples are measured, along the "
                             "ancestral and the decoder-mean path; repeat for several: prior, gmm, "
                             "empirical or a YAML mapping such as '{name: gmm, n_components: 20}' "
                             "(default: prior)")


command("eval", "evaluate a run on its held-out split: RUN_DIR/eval.json",
        arguments=_eval_arguments)(evaluate_run)


# -- plot ----------------------------------------------------------------------------------------
def plot(args: argparse.Namespace) -> int:
    from hierot import api

    if args.embedding == "umap":
        print("embedding latent layers wider than 2-D with UMAP: compiling UMAP (numba) takes "
              "most of this command's time, about half a minute (--embedding pca is fast)",
              flush=True)
    for path in api.plot(args.run_dir, args.checkpoint, device=args.device,
                         embedding=args.embedding, weights=args.weights):
        print(f"written {path}")
    return 0


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    parser.add_argument("--embedding", choices=["pca", "umap"], default="pca",
                        help="projection of latent layers wider than 2-D: pca (default, fast) or "
                             "umap (the paper's figures; compiling it takes about half a minute)")


command("plot", "draw a run's figures into RUN_DIR/figures and write RUN_DIR/report.md",
        arguments=_plot_arguments)(plot)


# -- sample --------------------------------------------------------------------------------------
def sample(args: argparse.Namespace) -> int:
    from hierot import api

    if args.n < 1:  # before loading anything (the API checks too)
        raise HierotError(f"sample: -n must be at least 1, got {args.n}")
    drawn = api.sample(args.run_dir, args.n, out=args.out, checkpoint=args.checkpoint,
                       device=args.device, seed=args.seed, sampler=args.sampler, path=args.path,
                       weights=args.weights)
    print(f"written {args.n} samples ({drawn.how}) of step {drawn.step} to {args.out}")
    return 0


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser, seed="the samples of the top latent and of each layer's noise")
    parser.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="FILE.png for an image grid (a scatter plot for vector data), "
                             "FILE.pt for the tensor (n, *shape)")
    parser.add_argument("--sampler", default="prior", metavar="SAMPLER",
                        help="sampler of the top latent: prior (the model's N(0, I)), gmm (a "
                             "Gaussian mixture fitted to the encoded training set), empirical, "
                             "or a "
                             "YAML mapping such as '{name: gmm, n_components: 20}' (default prior)")
    parser.add_argument("--path", choices=["ancestral", "mean"], default="ancestral",
                        help="decode z_N with each layer's noise (ancestral: the model) or "
                             "through the decoders' means (default ancestral)")


command("sample", "draw samples of a trained run into a PNG grid or a .pt tensor",
        arguments=_sample_arguments)(sample)


# -- report ------------------------------------------------------------------------------------
def report(args: argparse.Namespace) -> int:
    from hierot import api

    print(f"written {api.report(args.run_dir)}")
    return 0


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")


command("report", "write RUN_DIR/report.md from its spec, eval.json and figures",
        arguments=_report_arguments)(report)


# -- compare ---------------------------------------------------------------------------------------
def compare(args: argparse.Namespace) -> int:
    from hierot.api import compare as compare_runs
    from hierot.evaluation.compare import markdown

    for option, path, suffix in (("--out", args.out, ".md"), ("--json", args.json, ".json")):
        if path is not None and Path(path).suffix.lower() != suffix:
            raise HierotError(f"compare: {option} {path} must end in {suffix}")
    report = compare_runs(args.runs, baseline=args.baseline, sampler=args.sampler)
    text = markdown(report)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
        print(f"written {args.out}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"written {args.json}")
    return 0


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_OR_GLOB",
                        help="evaluated run directories, or globs such as 'runs/stacked-*'")
    parser.add_argument("--baseline", metavar="GROUP",
                        help="the group the others are tested against: a run directory in it, "
                             "its number in the table or its label (default: the first)")
    parser.add_argument("--sampler", help="the sampler compared (default: each run's first)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the Markdown table here")
    parser.add_argument("--json", metavar="FILE.json", help="also write the comparison as JSON")


command("compare", "compare evaluated runs: grouped by spec, mean ± sd, intervals, Welch's "
        "t-test against a baseline", arguments=_compare_arguments)(compare)
