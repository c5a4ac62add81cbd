"""The results table's report: one table per data set and the verdicts, from the run records.

A thin layer over the other benchmarks' aggregation (:func:`benchmarks.objectives.summarise`:
mean ± sample sd over seeds of probes, active units, KL, reconstructions, sample metrics, s/step)
and verdict (:func:`benchmarks.stacked_coverage.verdict`), so that both can move to the package's
``hierot compare`` (issue 22) by replacing :func:`summarise_arm` and :func:`verdicts`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import _common as common
from benchmarks import _runs as runs
from benchmarks import _samples as samples

KEY = "prior / ancestral"
"""The samples the verdicts compare: the model's prior, decoded with each layer's noise."""


def summarise_arm(records: list[dict]) -> dict:
    """Mean ± sd over the seeds of one arm's records (empty when none has an evaluation)."""
    from benchmarks.objectives import summarise

    return summarise(records)


def verdicts(summary: dict[str, dict], data: str, reference: str) -> dict[str, dict]:
    """``{arm: verdict}`` of every arm of ``data`` against its ``reference`` arm (``wae``: the flat
    WAE, ``stackedwae-mmd``: the paper's), the hierarchy judged against the paper's."""
    from benchmarks.stacked_coverage import verdict

    ref, paper = summary.get(f"{data}/{reference}"), summary.get(f"{data}/stackedwae-mmd")
    if not ref or KEY not in ref.get("samples", {}):
        return {}
    return {arm: verdict(s, ref, paper, key=KEY) for arm, s in summary.items()
            if arm.startswith(f"{data}/") and arm != f"{data}/{reference}"
            and KEY in s.get("samples", {})}


def missing(planned: list[tuple[str, int]], kept: list[dict]) -> list[str]:
    """``ARM (seeds ...)`` of every arm with a planned run that has no record, in plan order."""
    have = {(r["arm"], r["seed"]) for r in kept}
    seeds: dict[str, list[int]] = {}
    for arm, seed in planned:
        if (arm, seed) not in have:
            seeds.setdefault(arm, []).append(seed)
    return [f"{arm} (seed{'s' * (len(s) > 1)} {', '.join(map(str, s))})"
            for arm, s in seeds.items()]


def summarise(records: list[dict], planned: list[dict]) -> dict:
    """The report's ``runs``, ``summary``, ``verdicts`` and ``progress`` from every record."""
    wanted = {(job["arm"], job["seed"]) for job in planned}
    kept = [r for r in records if (r["arm"], r["seed"]) in wanted]
    by_arm: dict[str, list[dict]] = {}
    for record in kept:
        by_arm.setdefault(record["arm"], []).append(record)
    summary = {arm: summarise_arm(rs) for arm, rs in by_arm.items()}
    datasets = list(dict.fromkeys(arm.split("/")[0] for arm in summary))
    return {
        "runs": by_arm, "summary": summary,
        "commits": sorted({r.get("commit", "unknown") for r in kept}),
        "verdicts": {data: {ref: verdicts(summary, data, ref) for ref in ("wae", "stackedwae-mmd")}
                     for data in datasets},
        "progress": {"done": len(kept), "planned": len(wanted), "missing": missing(
            [(job["arm"], job["seed"]) for job in planned], kept)},
    }


def sample_grid(report: dict, run_root: Path, data: str, path: Path, n: int = 12) -> Path | None:
    """``n`` samples (:func:`hierot.sample`: the prior, ancestral path, seed 0) of the first seed
    of every arm of ``data`` whose run directory is here, one row per arm; ``None`` when none."""
    import hierot
    from hierot.evaluation.plotting import new_figure, save

    rows = {}
    for arm, records in report["runs"].items():
        run_dir = run_root / arm / f"seed-{records[0]['seed']}"
        if arm.startswith(f"{data}/") and "eval" in records[0] and run_dir.is_dir():
            rows[arm.split("/", 1)[1]] = hierot.sample(run_dir, n, seed=0).x
    if not rows:
        return None
    figure = new_figure(0.5 * n + 1.8, 0.55 * len(rows) + 0.2)
    for ax, (arm, x) in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        images = x.clamp(0, 1).movedim(1, -1)  # (n, H, W, C)
        ax.imshow(images.transpose(0, 1).flatten(1, 2).squeeze(-1).numpy(), cmap="gray",
                  vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(arm, rotation=0, ha="right", va="center", fontsize="small")
    return common.small_png(save(figure, path))


def draw_grids(report: dict, run_root: Path, out: Path) -> None:
    """One sample grid per data set, ``OUT/MODE-samples-DATA.png``, named in ``report["grids"]``."""
    report["grids"] = {}
    for data in report["verdicts"]:
        path = sample_grid(report, run_root, data, out / f"{report['mode']}-samples-{data}.png")
        if path:
            report["grids"][data] = path.name


def dataset_table(summary: dict[str, dict]) -> list[str]:
    """Markdown rows of one data set's arms (columns) and metrics (rows)."""
    fmt, first = runs.fmt, next(iter(summary.values()))
    layers = list(first["probe"])
    columns = [arm.split("/", 1)[1] for arm in summary]
    lines = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]

    def row(label: str, pick) -> None:
        lines.append(f"| {label} | " + " | ".join(pick(s) for s in summary.values()) + " |")

    row("seeds", lambda s: str(s["seeds"]))
    for z in layers:
        row(f"rec MSE/pixel from {z}", lambda s, z=z: fmt(s["rec_mse"][z]))
    for z in layers:
        row(f"probe accuracy {z}", lambda s, z=z: fmt(s["probe"][z]))
    for z in layers:
        row(f"active units {z} (of {first['active_dims'][z]})",
            lambda s, z=z: fmt(s["active"][z], 2))
    for z in layers:
        row(f"KL {z} (nats)", lambda s, z=z: fmt(s["kl"][z]))
    row("FCD of samples", lambda s: fmt(s["fcd"]))
    for metric in ("precision", "recall", "density", "coverage"):
        row(f"{metric} ({KEY})", lambda s, m=metric: fmt(s["samples"].get(KEY, {}).get(
            m, {"mean": None})))
    row("MMD(top latent, N(0, I))", lambda s: fmt(s["top_mmd"]))
    row("log p(x), IW K=100 (nats)", lambda s: fmt(s["log_px"], 4))
    row("s/step", lambda s: fmt(s["step_s"]))
    return lines


def verdict_table(found: dict[str, dict], reference: str) -> list[str]:
    names = ("precision", "density", "recall", "coverage", "class_tv")
    lines = [f"Against `{reference}`:", "",
             "| arm | " + " | ".join(names) + " | wins on both | keeps hierarchy |",
             "| --- |" + " --- |" * (len(names) + 2)]
    for arm, v in found.items():
        lines.append(f"| {arm.split('/', 1)[1]} | " + " | ".join(v[m] for m in names) + " | "
                     + ("**yes**" if v["wins_on_both"] else "no") + " | "
                     + ("yes" if v["keeps_hierarchy"] else "no") + " |")
    return lines + [""]


def markdown(report: dict) -> str:
    b, progress = report["budget"], report["progress"]
    complete = progress["done"] == progress["planned"]
    lines = common.report_intro(report, "Results table", (
        f"{b['steps']} steps of batch 128 per run, seeds {b['seeds']}, "
        + ("the paper's widths" if b["shrink"] == 1 else
           f"hidden widths of the presets divided by {b['shrink']}")
        + "; the VAEs' KL warm-up over a third of the steps. "
        f"Metrics of `hierot eval` ({b['eval_samples']} samples) on each data set's test split, "
        "mean ± sample sd over seeds."))
    made = ", ".join(f"`{c}`" for c in report["commits"]) or "none yet"
    lines += [f"Table written by commit `{report['commit']}` of hierot; runs made by {made}.", ""]
    lines += [("Complete" if complete else "**Partial**") + f": {progress['done']} of "
              f"{progress['planned']} runs done" + ("." if complete else
                                                    " (missing: " + ", ".join(progress["missing"])
                                                    + ")."), ""]
    for data in report["verdicts"]:
        arms = {a: s for a, s in report["summary"].items() if a.startswith(f"{data}/") and s}
        if not arms:
            continue
        lines += [f"## {data}", "", *dataset_table(arms), ""]
        if report.get("grids", {}).get(data):
            lines += [f"![samples of {data}]({report['grids'][data]})", "",
                      "Prior samples, ancestral path, of each arm's first seed.", ""]
        lines += samples.table({a.split("/", 1)[1]: s.get("samples", {}) for a, s in arms.items()})
        lines += ["", "### Verdicts", "", ("Prior samples, ancestral path: *better* / *worse* when "
                  "the means differ by more than the sum of the standard deviations; **wins on "
                  "both**: better on a fidelity and a coverage measure and worse on none; keeps "
                  "the hierarchy: top probe at least 0.45 and no depth reconstructing worse than "
                  "the paper's `stackedwae-mmd`."), ""]
        for reference, found in report["verdicts"][data].items():
            if found:
                lines += verdict_table(found, reference)
    return "\n".join(lines) + "\n"
