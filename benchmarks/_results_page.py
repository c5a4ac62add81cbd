"""The results page: one table per data set, the per-layer fidelity, the grids and the verdicts.

Everything is computed from the run records of ``python -m benchmarks results_table`` (each
keeps ``hierot eval``'s ``eval.json`` whole under ``eval_json``), so the page is rebuilt from the
committed records without the run directories (but for the sample grids, drawn from them):

* the per-layer rows (reconstruction, probe, active units, KL) and s/step: mean ± sample sd over
  seeds (:func:`benchmarks.objectives.summarise`, rendered by :mod:`benchmarks._layer_rows`);
* the protocol's sample metrics (FD, KID, precision, recall, density, coverage) of every sampler
  and their 95 % intervals, and the verdicts against the paper's StackedWAE (``stackedwae-mmd``)
  and the flat WAE (``wae``): the package's ``hierot compare``
  (:func:`hierot.evaluation.compare.compare_results`), with each arm's seeds as one group;
* the fidelity and coverage of held-out data regenerated from every depth (the quantitative
  Fig. 3b of Gaujac et al.; :mod:`hierot.evaluation._per_layer`), aggregated the same way
  (:func:`hierot.evaluation.compare.summarise_metric`).

The Markdown is :mod:`benchmarks._results_markdown`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from benchmarks import _common as common
from benchmarks import _runs as runs
from hierot.evaluation.compare import METRICS, compare_results, summarise_metric

REFERENCES = ("stackedwae-mmd", "wae", "hvae", "lvae")
"""The arms every other arm is judged against: the paper's StackedWAE and the flat WAE (the
issue's verdicts), and the hierarchical and Ladder VAEs (the research question: does StackedWAE
beat the VAE family?)."""
VAE_OBJECTIVES = ("hvae", "lvae")
"""Objectives whose KL terms are their ELBO's (a WAE's encoders are near-deterministic)."""


def summarise_arm(records: list[dict]) -> dict:
    """Mean ± sd over the seeds of one arm's per-layer numbers and s/step (empty when none has
    an evaluation), with the arm's ``objective`` (``eval.json``'s ``objective_name``)."""
    from benchmarks.objectives import summarise

    summary = summarise(records)
    if summary:
        first = next(r for r in records if "eval" in r)
        summary["objective"] = first.get("eval_json", {}).get("objective_name")
    return summary


def evaluations(by_arm: dict[str, list[dict]], data: str) -> dict[str, list[dict]]:
    """``{MODEL: [eval.json, ...]}`` of the arms of ``data`` whose records keep ``eval.json``."""
    return {arm.split("/", 1)[1]: [r["eval_json"] for r in records]
            for arm, records in with_evaluation(by_arm, data).items()}


def with_evaluation(by_arm: dict[str, list[dict]], data: str) -> dict[str, list[dict]]:
    """The records of the arms of ``data`` that keep ``eval.json`` (older records do not)."""
    out = {}
    for arm, records in by_arm.items():
        kept = [r for r in records if "eval_json" in r]
        if arm.startswith(f"{data}/") and kept:
            out[arm] = kept
    return out


def samplers(groups: dict[str, list[dict]]) -> list[str]:
    """The samplers in every ``eval.json`` of ``groups``, the benchmarks' order first."""
    sets = [set(r["sample_quality"].get("samplers", {})) for rs in groups.values() for r in rs]
    common_ = set.intersection(*sets) if sets else set()
    return [s for s in runs.SAMPLERS if s in common_] + sorted(common_ - set(runs.SAMPLERS))


def sample_metrics(groups: dict[str, list[dict]],
                   names: dict[str, list[str]] | None = None) -> dict:
    """``{"samplers": {SAMPLER: compare_results}, "verdicts": {REFERENCE: {SAMPLER: {MODEL:
    verdict}}}}``: the protocol's metrics of every arm, then every arm against each reference
    arm that has results (:data:`REFERENCES`); ``names``: each run's name in the JSON."""
    out: dict = {"samplers": {}, "verdicts": {}}
    for sampler in samplers(groups):
        out["samplers"][sampler] = compare_results(groups, sampler=sampler, names=names)
        for reference in REFERENCES:
            if reference in groups and len(groups) > 1:
                found = compare_results(groups, baseline=reference, sampler=sampler)
                out["verdicts"].setdefault(reference, {})[sampler] = {
                    arm: g["against_baseline"] for arm, g in found["groups"].items()
                    if arm != reference}
    return out


def per_layer(groups: dict[str, list[dict]], path: str = "ancestral") -> dict:
    """``{MODEL: {"z5": {metric: stat}, ..., "data": {...}}}``: held-out data regenerated from
    each depth (deepest first) along ``path``, and the held-out data themselves, over seeds."""
    out = {}
    for arm, results in groups.items():
        blocks = [r["sample_quality"]["per_layer"] for r in results
                  if "per_layer" in r["sample_quality"]]
        if not blocks:
            continue
        depths = list(blocks[0]["layers"])[::-1]
        rows = {z: [b["layers"][z][path] for b in blocks] for z in depths}
        rows["data"] = [b["data"] for b in blocks]
        metrics = [m for m in METRICS if m in blocks[0]["data"]]  # FD and the k-NN metrics
        out[arm] = {z: {m: summarise_metric(bs, m) for m in metrics} for z, bs in rows.items()}
    return out


def floor(groups: dict[str, list[dict]]) -> dict:
    """The protocol's floor (data against data: its floor points against the reference set), over
    the seeds of the first arm (it depends on the data set and the seed, not on the model)."""
    first = next(iter(groups.values()), [])
    blocks = [r["sample_quality"]["floor"] for r in first if "floor" in r["sample_quality"]]
    return {m: summarise_metric(blocks, m) for m in METRICS}


def protocol_line(result: dict) -> str:
    """The protocol of one ``eval.json`` in words: version, features, N and reference set."""
    p = result.get("sample_quality", {}).get("protocol")
    if not p:
        return "hierot-eval/1 (no protocol record)"
    f, ref = p["features"], p["reference"]
    return (f"`{p['version']}`: features `{f['name']}` ({f.get('source', '?')}, sha256 "
            f"`{str(f.get('sha256'))[:12]}`), N = {p['samples']:,} samples per sampler and "
            f"path, reference set {ref['points']:,} points of the {ref['split']} split, "
            f"floor {p['floor']['points']:,} {p['floor']['split']} points, "
            f"{p['intervals']['resamples']} bootstrap resamples")


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
    """The report's ``runs``, ``summary``, ``datasets`` (per data set: sample metrics,
    verdicts, per-layer fidelity, floor), ``protocols``, ``commits`` and ``progress``."""
    wanted = {(job["arm"], job["seed"]) for job in planned}
    kept = [r for r in records if (r["arm"], r["seed"]) in wanted]
    by_arm: dict[str, list[dict]] = {}
    for record in kept:
        by_arm.setdefault(record["arm"], []).append(record)
    summary = {arm: summarise_arm(rs) for arm, rs in by_arm.items()}
    datasets = {}
    for data in dict.fromkeys(arm.split("/")[0] for arm in summary):
        groups = evaluations(by_arm, data)
        names = {arm.split("/", 1)[1]: [r["where"] for r in records]
                 for arm, records in with_evaluation(by_arm, data).items()}
        datasets[data] = {**sample_metrics(groups, names), "per_layer": per_layer(groups),
                          "floor": floor(groups)}
    return {
        "runs": by_arm, "summary": summary, "datasets": datasets,
        "protocols": sorted({protocol_line(r["eval_json"]) for r in kept if "eval_json" in r}),
        "commits": sorted({r.get("commit", "unknown") for r in kept}),
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
    for data in report["datasets"]:
        path = sample_grid(report, run_root, data, out / f"{report['mode']}-samples-{data}.png")
        if path:
            report["grids"][data] = path.name


def publish(report: dict, text: str, out: Path, docs: Path, images: str = "img/results") -> Path:
    """Copy the page into the docs: ``DOCS/results-table.md`` (``text`` with every heading one
    level down, as ``docs/results.md`` includes it under its own title, and the grids' links
    pointing to ``DOCS/IMAGES/``, where the grids are copied). Returns the Markdown file."""
    (docs / images).mkdir(parents=True, exist_ok=True)
    for name in report.get("grids", {}).values():
        shutil.copyfile(out / name, docs / images / name)
        text = text.replace(f"]({name})", f"]({images}/{name})")
    text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)
    target = docs / "results-table.md"
    target.write_text(text)
    return target
