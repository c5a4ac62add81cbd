"""The evaluation sub-commands of ``hierot``; importing this module registers them.

::

    hierot eval RUN_DIR [--checkpoint STEP] [--device D] [--samples N]
    hierot plot RUN_DIR [--checkpoint STEP] [--device D] [--embedding pca|umap]
    hierot sample RUN_DIR -n N --out FILE [--checkpoint STEP] [--seed S]
    hierot report RUN_DIR

Heavy modules (torch models, matplotlib, scikit-learn, UMAP) are imported inside each command,
so registering them costs nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hierot.cli import command
from hierot.errors import HierotError


def _run_arguments(parser: argparse.ArgumentParser, *, device: bool = True) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory written by `hierot train`")
    parser.add_argument("--checkpoint", type=int, metavar="STEP",
                        help="the step of the checkpoint to use (default: the last)")
    if device:
        parser.add_argument("--device", help="cpu, cuda, ... (default: the spec's device)")


# -- eval ------------------------------------------------------------------------------------------
def evaluate_run(args: argparse.Namespace) -> int:
    from hierot.evaluation.evaluator import EVAL_FILE, evaluate, format_table

    result = evaluate(args.run_dir, args.checkpoint, device=args.device, samples=args.samples,
                      seed=args.seed)
    print(format_table(result))
    print(f"written {Path(args.run_dir) / EVAL_FILE}")
    return 0


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    parser.add_argument("--samples", type=int, default=5000, metavar="N",
                        help="generated samples (and as many test points) for the FCD, at most "
                             "the test set's size (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")


evaluate_run.arguments = _eval_arguments
command("eval", "evaluate a run on its held-out split: RUN_DIR/eval.json")(evaluate_run)


# -- plot ----------------------------------------------------------------------------------------
def plot(args: argparse.Namespace) -> int:
    from hierot.evaluation.figures import plot_run
    from hierot.evaluation.report import write_report

    if args.embedding == "umap":
        print("embedding latent layers wider than 2-D with UMAP: compiling UMAP (numba) takes "
              "most of this command's time, about half a minute (--embedding pca is fast)",
              flush=True)
    written = plot_run(args.run_dir, args.checkpoint, device=args.device, embedding=args.embedding)
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

    from hierot.evaluation.run import generate, load_run

    if args.n < 1:
        raise HierotError(f"sample: -n must be at least 1, got {args.n}")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".pt"):
        raise HierotError(f"sample: --out {out} must end in .png (an image grid) or .pt (a tensor)")
    run = load_run(args.run_dir, args.checkpoint, device=args.device)
    drawn = generate(run.model, args.n, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".pt":
        torch.save(drawn, out)
    else:
        _sample_png(run, drawn, out)
    print(f"written {args.n} samples of step {run.step} to {out}")
    return 0


def _sample_png(run, drawn, out: Path) -> None:
    import math

    from hierot.evaluation._draw import (
        Display,
        is_image,
        label_axes_xy,
        new_figure,
        save,
        show_mosaic,
        xy,
    )

    if is_image(run.model.data_shape):
        columns = math.ceil(math.sqrt(len(drawn)))
        rows = math.ceil(len(drawn) / columns)
        figure = new_figure(min(12, 0.6 * columns + 1), min(12, 0.6 * rows + 1))
        ax = figure.subplots()
        show_mosaic(ax, drawn, columns, Display(run.data.test_x))
    else:
        figure = new_figure(6, 6)
        ax = figure.subplots()
        ax.scatter(*xy(drawn).T, s=6)
        label_axes_xy(ax, "x", math.prod(run.model.data_shape))
    ax.set_title(f"{len(drawn)} samples, {run.run_dir.path.name}, step {run.step}")
    save(figure, out)


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    parser.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="FILE.png for an image grid (a scatter plot for vector data), "
                             "FILE.pt for the tensor (n, *shape)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior samples (default 0)")


sample.arguments = _sample_arguments
command("sample", "draw samples of a trained run into a PNG grid or a .pt tensor")(sample)


# -- report ------------------------------------------------------------------------------------
def report(args: argparse.Namespace) -> int:
    from hierot.evaluation.report import write_report

    print(f"written {write_report(args.run_dir)}")
    return 0


report.arguments = lambda p: p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
command("report", "write RUN_DIR/report.md from its spec, eval.json and figures")(report)
