"""The paper's ablation (Section 3.1): StackedWAE (Eq. 10) against the flat WAE (Eq. 7).

``mnist-stackedwae.v1`` and ``mnist-wae.v1`` share the networks, costs, divergence (MMD-IMQ),
weights and optimiser; only the objective differs. Both are trained with the same step budget
and seeds on ``mnist-5k`` (full MNIST is not available offline; ``--data`` takes any data set
mapping), then evaluated with :func:`hierot.evaluation.evaluate` (the metrics of ``hierot eval``):

* the reconstruction error of x from every encoding depth z_1 ... z_5;
* the linear-probe accuracy of the labels from every latent layer;
* the Fréchet classifier distance (FCD) of the model's samples to the test set;
* sample fidelity (precision, density) and coverage (recall, coverage, class histogram) of the
  prior's and a post-hoc Gaussian mixture's samples along the ancestral and the decoder-mean
  paths (:mod:`benchmarks._samples`), and the per-class histogram of the samples;

as mean ± sample standard deviation over the seeds, and drawn side by side: samples and decodes
of the top latent (Figures 2b and 2c / 4 of the paper, drawn by :mod:`hierot.evaluation.figures`)
for the first seed, and the per-layer metrics.

Quick mode divides every hidden width by ``--shrink`` (default 4: 512, 256, 128, 64, 32 units,
the ``quickstart`` widths) so that it fits a few minutes on a CPU; the full mode keeps the preset's.

    python -m benchmarks stacked_vs_flat --quick --threads 1   # widths / 4, 1000 steps, seeds 0 1
    python -m benchmarks stacked_vs_flat --threads 1   # preset widths, 2500 steps, seeds 0 1 2

The full budget (2,500 steps of batch 128: about 70 epochs of mnist-5k's 4,500 training digits)
is sized to run in about 80 minutes on a 2-core CPU; ``--steps`` raises it where there is a GPU.

Writes ``benchmarks/results/stacked_vs_flat/<mode>.json``, ``.md``, ``<mode>-figures.png``,
``<mode>-metrics.png`` and ``<mode>-classes.png``; run directories go to
``benchmarks/results/stacked_vs_flat/runs/<mode>/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs
from benchmarks import _samples as samples

NAME = "stacked_vs_flat"
PRESETS = {"stacked": "mnist-stackedwae.v1", "flat": "mnist-wae.v1"}
MODES = {
    "quick": {"steps": 1000, "seeds": [0, 1], "shrink": 4, "log_every": 50},
    "full": {"steps": 2500, "seeds": [0, 1, 2], "shrink": 1, "log_every": 100},
}


def markdown(report: dict) -> str:
    fmt = runs.fmt
    b, summary = report["budget"], report["summary"]
    lines = common.report_intro(report, "StackedWAE against the flat WAE", (
        f"`{PRESETS['stacked']}` against `{PRESETS['flat']}` on `{json.dumps(b['data'])}`, "
        f"{b['steps']} steps of batch {b['batch_size']}, seeds {b['seeds']}, hidden widths of "
        f"the presets divided by {b['shrink']}. Metrics of `hierot eval` on the test split, "
        "mean ± sample std over seeds."))
    if report["mode"] == "quick":
        lines += [("**Quick mode: tiny budgets and narrower networks.** The paper trains 5,000 "
                  "epochs of full MNIST with the preset widths; these runs see a few epochs of "
                  "4,500 digits. They show how the two objectives start, not where they end."), ""]
    else:
        seen = f"{b['steps'] * b['batch_size']:,} training samples"
        if b["data"] == {"name": "mnist-5k"}:
            seen += f" (about {b['steps'] * b['batch_size'] / 4500:.0f} epochs of its 4,500 digits)"
        lines += [(f"**Budget.** The paper trains 5,000 epochs of full MNIST (60,000 digits); "
                   f"these "
                  f"runs see {seen} with the paper's networks. They compare the two objectives "
                  "under one modest budget, not at convergence."), ""]
    if not all(summary.values()):
        lines += ["Some runs failed; see the JSON.", ""]
    if not summary.get("stacked") or not summary.get("flat"):
        return "\n".join(lines) + "\n"
    layers = list(summary["stacked"]["rec_mse"])
    lines += ["| metric | " + " | ".join(PRESETS[k] for k in summary) + " |",
              "| --- |" + " ---: |" * len(summary)]
    for z in layers:
        lines.append(f"| probe accuracy {z} | "
                     + " | ".join(fmt(s["probe"][z]) for s in summary.values()) + " |")
    for z in layers:
        lines.append(f"| rec MSE/pixel from {z} | "
                     + " | ".join(fmt(s["rec_mse"][z]) for s in summary.values()) + " |")
    lines.append("| FCD of samples | " + " | ".join(fmt(s["fcd"]) for s in summary.values()) + " |")
    lines.append("| MMD(top latent, N(0, I)) | "
                 + " | ".join(fmt(s["top_mmd"]) for s in summary.values()) + " |")
    lines.append("| s/step | " + " | ".join(fmt(s["step_s"]) for s in summary.values()) + " |")
    some = summary["stacked"]
    lines += ["", (f"Probe chance level {some['probe_chance']:.3g}; FCD floor (train vs test) "
              f"{fmt(some['fcd_floor'])}. The flat WAE's encoders above q(z1|x) get no gradient "
              "(Eq. 7 does not depend on them): its z2..z5 codes and reconstructions come from "
              "the initial weights."), ""]
    lines += ["## Sample fidelity and coverage", "", "Mean ± sd over seeds. " + samples.NOTE, ""]
    lines += samples.table({PRESETS[k]: s.get("samples", {}) for k, s in summary.items()})
    lines.append("")
    lines += common.figure_links(report, ("figures", "metrics", "classes"))
    return "\n".join(lines) + "\n"


def side_by_side(report: dict, out: Path, run_root: Path) -> Path | None:
    """Samples and top-latent decodes of the first seed of each objective, side by side."""
    from hierot.evaluation import figures

    def draw(run, run_dir: Path) -> list[Path]:
        return [figures.samples(run, run_dir / "figures" / "samples.png", seed=0),
                figures.top_latent(run, run_dir / "figures" / "top_latent.png")]

    columns = {kind: f"{kind}: {preset}" for kind, preset in PRESETS.items()}
    return common.first_seed_grid(report, run_root, columns, draw, out, (10, 10.5))


def metrics_plot(report: dict, out: Path) -> Path | None:
    from hierot.evaluation.plotting import new_figure, save

    summary = report["summary"]
    if not all(summary.values()):
        return None
    figure = new_figure(10, 3.4)
    figure.set_dpi(90)
    left, middle, right = figure.subplots(1, 3)
    for kind, s in summary.items():
        layers = list(s["probe"])
        for ax, key in ((left, "probe"), (middle, "rec_mse")):
            ax.errorbar(layers, [s[key][z]["mean"] for z in layers],
                        yerr=[s[key][z]["std"] or 0 for z in layers], marker="o", capsize=3,
                        label=kind)
        values = [v for v in s["fcd"]["values"] if v is not None]
        right.scatter([kind] * len(values), values, s=16)
        right.scatter([kind], [s["fcd"]["mean"]], c="k", marker="_", s=300)
    left.axhline(summary["stacked"]["probe_chance"], c="k", ls=":", lw=1, label="chance")
    left.set_title("linear-probe accuracy per layer", fontsize="medium")
    middle.set_title("reconstruction MSE/pixel from z_i", fontsize="medium")
    middle.set_yscale("log")
    right.set_title("FCD of samples (per seed)", fontsize="medium")
    left.legend(fontsize="small")
    middle.legend(fontsize="small")
    return common.small_png(save(figure, out), colours=64)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.run_parser(NAME, __doc__, MODES,
                               device_help="cpu, cuda (default: the presets' `auto`)")
    parser.add_argument("--data", default='{"name": "mnist-5k"}', help="data set mapping (YAML)")
    parser.add_argument("--shrink", type=int, help="divide every hidden width by this")
    args = parser.parse_args(argv)

    from hierot.spec import parse_yaml

    mode, budget = common.budget(MODES, args, "steps", "seeds", "shrink")
    budget.update(batch_size=128, data=parse_yaml(args.data))
    threads = common.set_threads(args.threads)
    report = common.header(NAME, mode, argv, presets=PRESETS, budget=budget, device=args.device,
                           torch_threads=threads, jobs=args.jobs, runs={}, summary={})
    run_root = runs.fresh_dir(args.out / "runs" / mode)
    jobs, kinds = runs.seed_jobs({kind: (preset, []) for kind, preset in PRESETS.items()}, budget,
                                 run_root, device=args.device, out=args.out)
    records = runs.run_parallel(runs.run_recorded, jobs, args.jobs, args.threads)
    for kind in PRESETS:
        report["runs"][kind] = [r for k, r in zip(kinds, records) if k == kind]
        report["summary"][kind] = runs.aggregate(report["runs"][kind])
    common.log("figures")
    classes = {PRESETS[k]: s.get("samples", {}) for k, s in report["summary"].items() if s}
    common.draw_figures(report, args.out, mode, {
        "figures": lambda p: side_by_side(report, p, run_root),
        "metrics": lambda p: metrics_plot(report, p),
        "classes": lambda p: samples.histogram_figure(classes, p)})
    for path in common.write(report, args.out, markdown):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
