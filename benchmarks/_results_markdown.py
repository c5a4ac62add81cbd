"""The results page's Markdown (``OUT/MODE.md``), from :func:`benchmarks._results_page.summarise`.

Per data set: one table of every arm (per-layer rows, the protocol's sample metrics of every
sampler with their intervals, s/step), the fidelity and coverage regenerated from every depth,
the sample grid, and ``hierot compare``'s verdicts against the paper's StackedWAE, the flat WAE,
the HVAE and the LVAE.
"""

from __future__ import annotations

from benchmarks import _common as common
from benchmarks._layer_rows import Row, layer_rows, table
from benchmarks._results_page import VAE_OBJECTIVES
from benchmarks._runs import fmt
from hierot.evaluation.compare import METRICS
from hierot.evaluation.compare import format_stat as package_format


def format_stat(stat: dict) -> str:
    """``mean ± sd [low, high]`` (:func:`hierot.evaluation.compare.format_stat`), the interval to
    four significant digits (FDs in the thousands keep their units)."""
    return package_format(stat, interval_digits=4)


NAMES = {"fcd": "FD", "kid": "KID", "precision": "precision", "recall": "recall",
         "density": "density", "coverage": "coverage"}
"""Metric -> its name on the page (``fcd``: the Fréchet distance in the protocol's features)."""
INTERVALS = ("mean ± sample sd over seeds [95 % interval: Student-t of the mean over seeds, or "
             "the run's own bootstrap interval for one seed]")


def intro(report: dict) -> list[str]:
    """Title, budget, machine, the commits, the protocol and whether the table is complete."""
    b, progress = report["budget"], report["progress"]
    complete = progress["done"] == progress["planned"]
    lines = common.report_intro(report, "Results table", (
        f"{b['steps']} steps of batch 128 per run, seeds {b['seeds']}, "
        + ("the paper's widths" if b["shrink"] == 1 else
           f"hidden widths of the presets divided by {b['shrink']}")
        + "; the VAEs' KL warm-up over a third of the steps. "
        f"Metrics of `hierot eval` ({b['eval_samples']} samples per sampler) on each data set, "
        f"{INTERVALS}."))
    made = ", ".join(f"`{c}`" for c in report["commits"]) or "none yet"
    lines += [f"Table written by commit `{report['commit']}` of hierot; runs made by {made}.", ""]
    protocols = report.get("protocols", [])
    if len(protocols) > 1:
        lines += [(f"> warning: the runs were measured under {len(protocols)} protocols, not "
                   "comparable:"), ""]
    lines += [f"Protocol {p}." for p in protocols] + ([""] if protocols else [])
    lines += [("Complete" if complete else "**Partial**") + f": {progress['done']} of "
              f"{progress['planned']} runs done" + ("." if complete else
                                                    " (missing: " + ", ".join(progress["missing"])
                                                    + ")."), ""]
    return lines


def sample_rows(found: dict) -> list[Row]:
    """The protocol's metrics of every sampler's ancestral samples (``found``: a data set's
    :func:`~benchmarks._results_page.sample_metrics`), one row per sampler and metric."""
    rows: list[Row] = []
    for sampler, report in found["samplers"].items():
        groups = report["groups"]
        for m in METRICS:
            rows.append((f"{NAMES[m]} ({sampler})", lambda s, g=groups, m=m: format_stat(
                g[s["model"]]["metrics"][m]) if s["model"] in g else "-"))
    return rows


def kl_cell(summary: dict) -> str | None:
    """``None`` (shown) for the VAE family; ``n/a`` for a WAE (note under the table)."""
    return None if summary.get("objective") in VAE_OBJECTIVES else "n/a"


def dataset_table(arms: dict[str, dict], found: dict) -> list[str]:
    """The data set's table: a column per arm (``{MODEL: summary}``), a row per number."""
    return table(arms, [
        ("seeds", lambda s: str(s["seeds"])),
        *layer_rows(arms, kl=kl_cell, kl_label="KL {z} (nats; VAE family)"),
        *sample_rows(found),
        ("MMD(top latent, N(0, I))", lambda s: fmt(s["top_mmd"])),
        ("log p(x), IW K=100 (nats)", lambda s: fmt(s["log_px"], 4)),
        ("s/step (median wall time)", lambda s: fmt(s["step_s"])),
    ])


def table_note(arms: dict[str, dict], found: dict) -> str:
    some = next(iter(arms.values()))
    floor = ", ".join(f"{NAMES[m]} {format_stat(s)}" for m, s in found["floor"].items()
                      if s["mean"] is not None)
    return (f"Cells: {INTERVALS}. FD: the Fréchet distance in the protocol's features; KID: "
            "the kernel inception distance in the same features; precision and recall (k = 3), "
            "density and coverage (k = 5) of the ancestral samples (the model) of each sampler "
            "of the top latent: `prior` is the model's prior, `gmm` a 10-component Gaussian "
            "mixture fitted post hoc to the encoded training set. Floor (data against data: "
            f"the protocol's floor points against the reference set): {floor or '-'}. Probe "
            f"chance level {some['probe_chance']:.3g}. Active: units whose posterior mean "
            "varies across test points with variance > 0.01. KL: the hierarchical ELBO's term "
            "of each layer, shown for the VAE family only (`n/a`: a WAE's near-deterministic "
            "encoders make its Monte-Carlo KL meaningless). s/step: the median wall time of a "
            "training step, on the machine and under the load named above.")


def per_layer_table(found: dict) -> list[str]:
    """Held-out data regenerated from every depth, deepest first, for every arm."""
    if not found["per_layer"]:
        return []
    metrics = list(next(iter(next(iter(found["per_layer"].values())).values())))
    lines = ["| arm | regenerated from | " + " | ".join(NAMES[m] for m in metrics) + " |",
             "| --- | --- |" + " ---: |" * len(metrics)]
    for arm, rows in found["per_layer"].items():
        for i, (depth, stats) in enumerate((z, s) for z, s in rows.items() if z != "data"):
            lines.append(f"| {arm if i == 0 else ''} | {depth} | "
                         + " | ".join(format_stat(stats[m]) for m in metrics) + " |")
    data = next(iter(found["per_layer"].values()))["data"]  # the same points for every arm
    lines.append("| held-out data | - | " + " | ".join(format_stat(data[m]) for m in metrics)
                 + " |")
    return ["### Regenerated from each depth", "",
            ("Held-out points encoded to each depth (posterior means) and decoded back along the "
             "ancestral path (the model's noise below that depth): the quantitative Fig. 3b of "
             f"the paper. {INTERVALS[0].upper() + INTERVALS[1:]}; the decoder-mean path is in "
             "the JSON."), "", *lines, ""]


def verdict_tables(found: dict) -> list[str]:
    """``hierot compare``'s verdicts of every arm against each reference, per sampler."""
    lines = ["### Verdicts", "",
             ("`hierot compare`'s verdicts (`hierot.evaluation.compare`) on the ancestral "
              "samples of each sampler, each arm's seeds one group: *better* or *worse* when "
              "the means differ by more than the sum of the two standard deviations, else "
              "*tie* (an arm of one seed has no sd: any difference counts), with Welch's "
              "two-sided p (two seeds or more on each side); **wins on both**: better on a "
              "fidelity measure (precision, density) and on a coverage measure (recall, "
              "coverage) and worse on none."), ""]
    for reference, by_sampler in found["verdicts"].items():
        for sampler, arms in by_sampler.items():
            lines += [f"Against `{reference}`, sampler `{sampler}`:", "",
                      "| arm | " + " | ".join(NAMES[m] for m in METRICS) + " | wins on both |",
                      "| --- |" + " --- |" * (len(METRICS) + 1)]
            for arm, v in arms.items():
                cells = [v[m] + (f" (p {v['welch_p'][m]:.2g})" if v["welch_p"][m] is not None
                                 else "") for m in METRICS]
                lines.append(f"| {arm} | " + " | ".join(cells) + " | "
                             + ("**yes**" if v["wins_on_both"] else "no") + " |")
            lines.append("")
    return lines


def markdown(report: dict) -> str:
    """The whole page (module docstring)."""
    lines = intro(report)
    for data, found in report["datasets"].items():
        arms = {a.split("/", 1)[1]: {**s, "model": a.split("/", 1)[1]}
                for a, s in report["summary"].items() if a.startswith(f"{data}/") and s}
        if not arms:
            continue
        lines += [f"## {data}", "", *dataset_table(arms, found), "", table_note(arms, found), ""]
        lines += per_layer_table(found)
        if report.get("grids", {}).get(data):
            lines += ["### Samples", "", f"![samples of {data}]({report['grids'][data]})", "",
                      "Prior samples, ancestral path, of each arm's first seed.", ""]
        if found["verdicts"]:
            lines += verdict_tables(found)
    return "\n".join(lines) + "\n"
