"""The evaluation sub-commands of ``hierot``; importing this module registers them.

::

    hierot eval RUN_DIR [--checkpoint STEP|best] [--weights ema|raw] [--device D] [--samples N]
                        [--sampler S ...]
    hierot plot RUN_DIR [--checkpoint STEP|best] [--weights ema|raw] [--device D]
                        [--embedding pca|umap]
    hierot sample RUN_DIR -n N --out FILE [--checkpoint STEP|best] [--weights ema|raw] [--seed S]
                        [--sampler S] [--path P]
    hierot report RUN_DIR

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


def _run_arguments(parser: argparse.ArgumentParser, *, seed: str | None = None) -> None:
    """RUN_DIR, ``--checkpoint`` and ``--device``; ``--seed`` too when ``seed`` says what it seeds."""
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
    from hierot.evaluation.evaluator import EVAL_FILE, evaluate, format_table
    from hierot.evaluation.samplers import parse_sampler
    from hierot.evaluation.trained import load_run

    samplers = args.sampler or ["prior"]
    for text in samplers:  # a bad --sampler fails before any work
        parse_sampler(text)
    run = load_run(args.run_dir, args.checkpoint, device=args.device, weights=args.weights)
    result = evaluate(run, samples=args.samples, seed=args.seed, samplers=samplers)
    print(format_table(result))
    print(f"written {Path(args.run_dir) / EVAL_FILE}")
    return 0


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser, seed="every random draw")
    parser.add_argument("--samples", type=int, default=5000, metavar="N",
                        help="generated samples (and as many test points) for the FCD, at most "
                             "the test set's size (default 5000)")
    parser.add_argument("--sampler", action="append", metavar="SAMPLER",
                        help="sampler of the top latent whose samples are measured, along the "
                             "ancestral and the decoder-mean path; repeat for several: prior, gmm, "
                             "empirical or a YAML mapping such as '{name: gmm, n_components: 20}' "
                             "(default: prior)")


evaluate_run.arguments = _eval_arguments
command("eval", "evaluate a run on its held-out split: RUN_DIR/eval.json")(evaluate_run)


# -- plot ----------------------------------------------------------------------------------------
def plot(args: argparse.Namespace) -> int:
    from hierot.evaluation.figures import plot_run
    from hierot.evaluation.report import write_report
    from hierot.evaluation.trained import load_run

    if args.embedding == "umap":
        print("embedding latent layers wider than 2-D with UMAP: compiling UMAP (numba) takes "
              "most of this command's time, about half a minute (--embedding pca is fast)",
              flush=True)
    run = load_run(args.run_dir, args.checkpoint, device=args.device, weights=args.weights)
    written = plot_run(run, embedding=args.embedding)
    for path in written:
        print(f"written {path}")
    print(f"written {write_report(args.run_dir)}")
    return 0


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    parser.add_argument("--embedding", choices=["pca", "umap"], default="pca",
                        help="projection of latent layers wider than 2-D: pca (default, fast) or "
                             "umap (the paper's figures; compiling it takes about half a minute)")


plot.arguments = _plot_arguments
command("plot", "draw a run's figures into RUN_DIR/figures and write RUN_DIR/report.md")(plot)


# -- sample --------------------------------------------------------------------------------------
def sample(args: argparse.Namespace) -> int:
    import torch

    from hierot.evaluation.samplers import draw, fitted, label, parse_sampler
    from hierot.evaluation.trained import load_run

    if args.n < 1:
        raise HierotError(f"sample: -n must be at least 1, got {args.n}")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".pt"):
        raise HierotError(f"sample: --out {out} must end in .png (an image grid) or .pt (a tensor)")
    options = parse_sampler(args.sampler)
    run = load_run(args.run_dir, args.checkpoint, device=args.device, weights=args.weights)
    sampler = fitted(run, options, seed=args.seed)
    drawn = draw(run.model, sampler, args.n, args.path, seed=args.seed, device=run.device)
    how = f"{label(options)} / {args.path}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".pt":
        torch.save(drawn, out)
    else:
        from hierot.evaluation.plotting import samples_figure

        title = f"{len(drawn)} samples ({how}), {run.run_dir.path.name}, step {run.step}"
        samples_figure(drawn, run.model.data_shape, run.data.test_x, title, out)
    print(f"written {args.n} samples ({how}) of step {run.step} to {out}")
    return 0


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser, seed="the samples of the top latent and of each layer's noise")
    parser.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="FILE.png for an image grid (a scatter plot for vector data), "
                             "FILE.pt for the tensor (n, *shape)")
    parser.add_argument("--sampler", default="prior", metavar="SAMPLER",
                        help="sampler of the top latent: prior (the model's N(0, I)), gmm (a "
                             "Gaussian mixture fitted to the encoded training set), empirical, or a "
                             "YAML mapping such as '{name: gmm, n_components: 20}' (default prior)")
    parser.add_argument("--path", choices=["ancestral", "mean"], default="ancestral",
                        help="decode z_N with each layer's noise (ancestral: the model) or "
                             "through the decoders' means (default ancestral)")


sample.arguments = _sample_arguments
command("sample", "draw samples of a trained run into a PNG grid or a .pt tensor")(sample)


# -- report ------------------------------------------------------------------------------------
def report(args: argparse.Namespace) -> int:
    from hierot.evaluation.report import write_report

    print(f"written {write_report(args.run_dir)}")
    return 0


report.arguments = lambda p: p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
command("report", "write RUN_DIR/report.md from its spec, eval.json and figures")(report)
