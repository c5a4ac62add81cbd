"""MMD against Sinkhorn: one hierarchy trained with each top divergence, same budget, several seeds.

The hierarchy is the ``quickstart`` preset's (latents 32-16-8-4-2, MLPs of 512 ... 32 units,
Eq. 10 with the paper's lambda schedule); only ``divergence`` (and ``seed``, ``data``, the step
budget) is overridden. Per divergence and data set it reports, as mean ± sample standard deviation
over the seeds:

* the metrics of ``hierot eval`` (:func:`hierot.evaluation.evaluate`, default arguments):
  reconstruction error from every encoding depth, linear-probe accuracy of every latent layer,
  MMD and Sinkhorn between the encoded top latent and N(0, I), and the Fréchet classifier
  distance (FCD) of the samples;
* sample fidelity (precision, density) and coverage (recall, coverage, class histogram) of the
  prior's and a post-hoc Gaussian mixture's samples, along the ancestral and the decoder-mean
  paths (:mod:`benchmarks._samples`), with a per-class histogram figure
  ``<mode>-<data>-classes.png``;
* the time per training step: the median over ``metrics.csv``'s logging intervals (wall time of
  the whole loop, first and last interval left out);
* the time of the divergence alone, forward + backward, on the same shapes (the trained model's
  encoded training batch against as many prior draws; median of 15 after 3 warm-up), and its share
  of the step.

Divergences (``--divergences LABEL[=YAML] ...``; a bare registered name such as ``energy`` means
that divergence with its default options)::

    mmd-imq            {name: mmd, kernel: imq}      (the paper's)
    mmd-rbf            {name: mmd, kernel: rbf}
    sinkhorn-geomloss  {name: sinkhorn, backend: geomloss, blur: 0.5}
    sinkhorn-pot       {name: sinkhorn, backend: pot, blur: 0.5}

Both Sinkhorn backends use ``blur=0.5``: the POT backend solves the cross term to its tolerance,
which at the default 0.05 takes more than ``max_iter`` iterations for a 2-d top latent (see
``benchmarks/results/divergences``).

    python -m benchmarks mmd_vs_sinkhorn --quick --threads 1   # 200 steps, seeds 0 1, mnist-5k
    # 4000 steps, seeds 0 1 2, mnist-5k + fashion-mnist:
    python -m benchmarks mmd_vs_sinkhorn --threads 1 --jobs 2

The full budget (24 runs of 4,000 steps) is sized to take about 45 minutes on a 2-core CPU with
two runs at a time; ``--steps`` raises it where there is more compute.

Writes ``benchmarks/results/mmd_vs_sinkhorn/<mode>.json``, ``.md`` and ``<mode>.png``; run
directories go to ``benchmarks/results/mmd_vs_sinkhorn/runs/<mode>/`` (not committed).
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

NAME = "mmd_vs_sinkhorn"
PRESET = "quickstart"
DIVERGENCES = {
    "mmd-imq": {"name": "mmd", "kernel": "imq"},
    "mmd-rbf": {"name": "mmd", "kernel": "rbf"},
    "sinkhorn-geomloss": {"name": "sinkhorn", "backend": "geomloss", "blur": 0.5},
    "sinkhorn-pot": {"name": "sinkhorn", "backend": "pot", "blur": 0.5},
}
DATASETS = {"mnist-5k": {"name": "mnist-5k"}, "fashion-mnist": {"name": "fashion-mnist"}}
MODES = {
    "quick": {"steps": 200, "seeds": [0, 1], "datasets": ["mnist-5k"], "log_every": 20},
    "full": {"steps": 4000, "seeds": [0, 1, 2], "datasets": ["mnist-5k", "fashion-mnist"],
             "log_every": 100},
}


def parse_divergences(items: list[str] | None) -> dict[str, dict]:
    from hierot.errors import HierotError
    from hierot.registry import divergences
    from hierot.spec import parse_yaml

    if not items:
        return dict(DIVERGENCES)
    chosen = {}
    for item in items:
        label, sep, text = item.partition("=")
        if sep:
            chosen[label] = parse_yaml(text)
        elif label in DIVERGENCES:
            chosen[label] = DIVERGENCES[label]
        elif label in divergences.names():
            chosen[label] = {"name": label}
        else:
            raise HierotError(f"--divergences: unknown {label!r}; known: "
                              f"{sorted(DIVERGENCES)} or a registered name {divergences.names()}")
    return chosen


def dataset_note(options: dict) -> str | None:
    """``None`` when the data set loads, else why not (recorded, and the data set skipped)."""
    from hierot.registry import datasets

    try:
        datasets.build(datasets.tagged_options(options["name"])(**options), seed=0)
    except Exception as exc:  # noqa: BLE001 - any reason to skip is recorded verbatim
        return f"{type(exc).__name__}: {exc}"
    return None


def markdown(report: dict) -> str:
    fmt = runs.fmt
    b = report["budget"]
    lines = common.report_intro(report, "MMD against Sinkhorn", (
        f"Hierarchy: the `{report['preset']}` preset (latents 32-16-8-4-2), {b['steps']} steps of "
        f"batch {b['batch_size']}, seeds {b['seeds']}; only the top divergence differs. "
        "Metrics of `hierot eval` on the test split, mean ± sample std over seeds. "
        "Step time: median over the logging intervals; divergence: its forward + backward alone "
        "on the same shapes (median of 15); share = divergence / step."))
    if report["mode"] == "quick":
        lines += [("**Quick mode: tiny budgets.** These numbers check that the pipeline runs and "
                  "give the cost per step; the models are far from converged, so the quality "
                  "metrics are not the paper's regime and differences between divergences here "
                  "say little about trained models."), ""]
    for dataset, block in report["datasets"].items():
        lines += [f"## {dataset}", ""]
        if "skipped" in block:
            lines += [f"Skipped: {block['skipped']}", ""]
            continue
        summary = block["summary"]
        some = next((s for s in summary.values() if s), None)
        if some is None:
            lines += ["Every run failed; see the JSON.", ""]
            continue
        top = list(some["rec_mse"])[-1]
        lines += [
            (f"| divergence | s/step | divergence ms | share | rec MSE z1 | rec MSE {top} | "
            f"probe z1 | probe {top} | MMD({top}, prior) | Sinkhorn({top}, prior) | FCD |"),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for label, s in summary.items():
            if not s:
                lines.append(f"| {label} | failed: see JSON | | | | | | | | | |")
                continue
            lines.append(
                f"| {label} | {fmt(s['step_s'])} | {fmt(s['divergence_s'], scale=1e3)} | "
                f"{fmt(s['divergence_share'], 2)} | {fmt(s['rec_mse']['z1'])} | "
                f"{fmt(s['rec_mse'][top])} | {fmt(s['probe']['z1'])} | {fmt(s['probe'][top])} | "
                f"{fmt(s['top_mmd'])} | {fmt(s['top_sinkhorn'])} | {fmt(s['fcd'])} |")
        lines += ["", (f"Probe chance level {some['probe_chance']:.3g}; FCD floor (train vs test) "
                  f"{runs.fmt(some['fcd_floor'])}. Probe accuracy of every layer:"), "",
                  "| divergence | " + " | ".join(some["probe"]) + " |",
                  "| --- |" + " ---: |" * len(some["probe"])]
        for label, s in summary.items():
            if s:
                lines.append(f"| {label} | "
                             + " | ".join(fmt(v) for v in s["probe"].values()) + " |")
        lines += ["", "Sample fidelity and coverage, mean ± sd over seeds. " + samples.NOTE, ""]
        lines += samples.table({label: s.get("samples", {}) for label, s in summary.items() if s})
        if block.get("classes_png"):
            lines += ["", f"![classes]({block['classes_png']})"]
        lines.append("")
    lines += ["Divergence options:", ""]
    lines += [f"- `{k}`: `{json.dumps(v)}`" for k, v in report["divergences"].items()]
    if report.get("figure"):
        lines += ["", f"![summary]({report['figure']})"]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path | None:
    from hierot.evaluation.plotting import new_figure, save

    blocks = {d: b for d, b in report["datasets"].items() if b.get("summary")}
    if not blocks:
        return None
    figure = new_figure(12, 3.3 * len(blocks))
    figure.set_dpi(90)
    axes = figure.subplots(len(blocks), 3, squeeze=False)
    for row, (dataset, block) in zip(axes, blocks.items()):
        labels = [k for k, s in block["summary"].items() if s]
        summary = block["summary"]
        ax = row[0]
        steps = [summary[k]["step_s"]["mean"] * 1e3 for k in labels]
        div = [(summary[k]["divergence_s"]["mean"] or 0) * 1e3 for k in labels]
        ax.bar(labels, steps, color="tab:gray", label="training step")
        ax.bar(labels, div, color="tab:red", label="divergence fwd+bwd")
        ax.set_ylabel("ms")
        ax.set_title(f"{dataset}: time per step", fontsize="medium")
        ax.legend(fontsize="small")
        ax = row[1]
        for i, k in enumerate(labels):
            values = [v for v in summary[k]["fcd"]["values"] if v is not None]
            ax.scatter([i] * len(values), values, c="tab:blue", s=14)
            ax.scatter([i], [summary[k]["fcd"]["mean"]], c="k", marker="_", s=300)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_title(f"{dataset}: FCD of samples (per seed; lower is better)", fontsize="medium")
        ax = row[2]
        for k in labels:
            layers = list(summary[k]["probe"])
            means = [summary[k]["probe"][z]["mean"] for z in layers]
            ax.plot(layers, means, marker="o", label=k)
        ax.axhline(summary[labels[0]]["probe_chance"], c="k", ls=":", lw=1, label="chance")
        ax.set_title(f"{dataset}: linear-probe accuracy per layer", fontsize="medium")
        ax.legend(fontsize="small")
        for ax in row[:2]:
            ax.tick_params(axis="x", labelsize="small", rotation=15)
    return common.small_png(save(figure, path), colours=64)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.run_parser(NAME, __doc__, MODES,
                               device_help="cpu, cuda (default: the preset's `auto`)")
    parser.add_argument("--divergences", nargs="+", metavar="LABEL[=YAML]",
                        help=f"default: {' '.join(DIVERGENCES)}")
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS))
    args = parser.parse_args(argv)

    mode, budget = common.budget(MODES, args, "steps", "seeds", "datasets")
    budget["batch_size"] = 128
    threads = common.set_threads(args.threads)
    chosen = parse_divergences(args.divergences)
    report = common.header(NAME, mode, argv, preset=PRESET, budget=budget, divergences=chosen,
                           torch_threads=threads, jobs=args.jobs, datasets={})
    run_root = runs.fresh_dir(args.out / "runs" / mode)
    jobs, keys = [], []
    for dataset in budget["datasets"]:
        note = dataset_note(DATASETS[dataset])
        if note:
            common.log(f"skip {dataset}: {note}")
            report["datasets"][dataset] = {"skipped": note}
            continue
        report["datasets"][dataset] = {"options": DATASETS[dataset], "runs": {}, "summary": {}}
        for label, options in chosen.items():
            for seed in budget["seeds"]:
                overrides = [f"data={json.dumps(DATASETS[dataset])}",
                             f"divergence={json.dumps(options)}",
                             f"seed={seed}",
                             *runs.train_overrides(budget["steps"], budget["log_every"])]
                if args.device:
                    overrides.append(f"device={args.device}")
                out = run_root / dataset / label / f"seed-{seed}"
                jobs.append((PRESET, overrides, out, args.device, True, args.out, seed))
                keys.append((dataset, label))
    records = runs.run_parallel(runs.run_recorded, jobs, args.jobs, args.threads)
    for (dataset, label), record in zip(keys, records):
        report["datasets"][dataset]["runs"].setdefault(label, []).append(record)
    for block in report["datasets"].values():
        for label, records in block.get("runs", {}).items():
            block["summary"][label] = runs.aggregate(records)
    for dataset, block in report["datasets"].items():
        arms = {label: s.get("samples", {}) for label, s in block.get("summary", {}).items() if s}
        common.draw_figures(block, args.out, f"{mode}-{dataset}",
                            {"classes": lambda p, arms=arms: samples.histogram_figure(arms, p)})
    figure = plot(report, args.out / f"{mode}.png")
    report["figure"] = figure.name if figure else None
    for path in common.write(report, args.out, markdown):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
