r"""``hierot compare``: one table over evaluated runs, grouped, with spread, intervals and tests.

Runs are grouped by their resolved spec (``RUN/spec.yaml``) less the fields that do not change
the experiment (:data:`IGNORED`: the seed, the device, the description and the logging cadence),
so the seeds of one preset with one set of ``--set`` overrides form one group; each group is
labelled by the fields in which it differs from the others (``layers.4.latent_shape=[8]``).

For every metric (:data:`METRICS`, of the first sampler's ancestral samples in ``eval.json``) a
group gets the mean and the sample standard deviation over its runs and a 95 % interval: the
Student-t interval of the mean for two runs or more, the run's own bootstrap interval for one.
Each group is tested against a named baseline group with Welch's t-test (Welch, *Biometrika*
34, 1947; unequal variances, two-sided), and the verdict logic of the benchmarks
(:func:`verdict`): *better* or *worse* when the means differ by more than the sum of the two
standard deviations, else *tie*.

Runs measured under different protocols (version, feature space, sample count) are not
comparable: they are listed as a warning in the table and the JSON.
"""

from __future__ import annotations

import glob
import json
import math
import statistics
from pathlib import Path

from hierot.errors import HierotError
from hierot.run import layout

METRICS = {"fcd": -1, "kid": -1, "precision": +1, "recall": +1, "density": +1, "coverage": +1}
"""Metric -> which way is better (+1: higher)."""
IGNORED = {"seed", "device", "description", "train.progress", "train.log_every",
           "train.checkpoint_every", "train.keep_checkpoints"}


def mean_std(values: list[float | None]) -> dict:
    """Mean and sample standard deviation (``None`` with fewer than two values) of the values."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not kept:
        return {"mean": None, "std": None, "n": 0, "values": values}
    std = statistics.stdev(kept) if len(kept) > 1 else None
    return {"mean": statistics.fmean(kept), "std": std, "n": len(kept), "values": values}


def compare_means(a: dict, b: dict, direction: int) -> str:
    """``better``, ``worse`` or ``tie``: ``a`` against ``b`` (:func:`mean_std` dicts), better or
    worse only when the means differ by more than the sum of the two standard deviations."""
    if a["mean"] is None or b["mean"] is None:
        return "-"
    gap = (a["mean"] - b["mean"]) * direction
    if abs(gap) <= (a["std"] or 0.0) + (b["std"] or 0.0):
        return "tie"
    return "better" if gap > 0 else "worse"


def welch_p(a: dict, b: dict) -> float | None:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` (:func:`mean_std` dicts) have the
    same mean; ``None`` with fewer than two values on a side or no spread at all."""
    from scipy.stats import ttest_ind_from_stats

    if a["mean"] is None or b["mean"] is None or min(a["n"], b["n"]) < 2:
        return None
    if not (a["std"] or b["std"]):
        return None
    return float(ttest_ind_from_stats(a["mean"], a["std"], a["n"], b["mean"], b["std"], b["n"],
                                      equal_var=False).pvalue)


def t_interval(stat: dict, confidence: float = 0.95) -> list[float] | None:
    """Student-t interval of the mean of a :func:`mean_std` dict (two values or more)."""
    from scipy.stats import t

    if stat["mean"] is None or stat["n"] < 2:
        return None
    half = t.ppf(0.5 + confidence / 2, stat["n"] - 1) * stat["std"] / math.sqrt(stat["n"])
    return [stat["mean"] - half, stat["mean"] + half]


def verdict(arm: dict[str, dict], base: dict[str, dict], directions: dict[str, int],
            fidelity=("precision", "density"), coverage=("recall", "coverage")) -> dict:
    """How ``arm`` fares against ``base`` (``{metric: mean_std}``) on every metric: better /
    worse / tie, Welch's p-value, and whether it **wins on both**: better on a fidelity and on a
    coverage metric and worse on none."""
    marks = {m: compare_means(arm[m], base[m], d) for m, d in directions.items()}
    wins = ("worse" not in marks.values() and any(marks.get(m) == "better" for m in fidelity)
            and any(marks.get(m) == "better" for m in coverage))
    return {**marks, "wins_on_both": wins,
            "welch_p": {m: welch_p(arm[m], base[m]) for m in directions}}


# -- runs and groups ---------------------------------------------------------------------------
def find_runs(patterns: list[str]) -> list[Path]:
    """Run directories named by paths or globs; each must hold ``eval.json``."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
        if not matches:
            raise HierotError(f"compare: {pattern!r} matches no run directory")
        found += [Path(m) for m in matches if Path(m).is_dir()]
    missing = [str(p) for p in found if not (p / layout.EVAL).is_file()]
    if missing:
        raise HierotError(f"compare: no eval.json in {', '.join(missing)}: run `hierot eval` "
                          "on them first")
    if not found:
        raise HierotError(f"compare: {patterns} name no run directory")
    return list(dict.fromkeys(found))


def _flatten(value, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: json.dumps(value)}


def _spec(run: Path) -> dict[str, str]:
    from hierot._yaml import parse_yaml

    flat = _flatten(parse_yaml((run / layout.SPEC).read_text()) or {})
    return {k: v for k, v in flat.items() if k not in IGNORED}


def group_runs(runs: list[Path]) -> dict[str, list[Path]]:
    """Runs grouped by their spec less :data:`IGNORED`, labelled by what sets each apart."""
    specs = {run: _spec(run) for run in runs}
    groups: dict[tuple, list[Path]] = {}
    for run, spec in specs.items():
        groups.setdefault(tuple(sorted(spec.items())), []).append(run)
    keys = set().union(*specs.values())
    varying = sorted(k for k in keys if len({dict(g).get(k) for g in groups}) > 1)
    labelled = {}
    for key, members in groups.items():
        fields = dict(key)
        label = ", ".join(f"{k}={fields.get(k, '(absent)')}" for k in varying) or "all runs"
        labelled[label] = members
    return labelled


def _headline(result: dict, sampler: str | None, path: str = "ancestral") -> dict:
    quality = result.get("sample_quality", {})
    if "samplers" not in quality:
        return {}
    name = sampler or next(iter(quality["samplers"]))
    if name not in quality["samplers"]:
        where = result.get("run", "a run")
        raise HierotError(f"compare: --sampler {name!r} is not in {where}'s eval.json "
                          f"(there: {list(quality['samplers'])})")
    return quality["samplers"][name][path]


def _protocol(result: dict) -> str:
    p = result.get("sample_quality", {}).get("protocol")
    if not p:
        return "hierot-eval/1 (no protocol record)"
    f = p["features"]
    return f"{p['version']}, {f['name']} {str(f.get('sha256'))[:12]}, N = {p['samples']}"


def summarise_metric(blocks: list[dict], metric: str) -> dict:
    """:func:`mean_std` of ``metric`` over ``blocks`` (one metrics block of ``eval.json`` per run:
    a sampler's path, or a depth of ``per_layer``) with its 95 % ``interval``: Student-t of the
    mean (:func:`t_interval`) for two runs or more that differ, else the first run's own bootstrap
    interval (one run, or runs that measured the same thing: the held-out data of every seed)."""
    stat = mean_std([b.get(metric) for b in blocks])
    stat["interval"] = (t_interval(stat) if stat["n"] > 1 and stat["std"] else
                        (blocks[0].get("intervals", {}).get(metric) if blocks else None))
    return stat


def compare_results(groups: dict[str, list[dict]], *, baseline: str | None = None,
                    sampler: str | None = None, path: str = "ancestral",
                    names: dict[str, list[str]] | None = None) -> dict:
    """The comparison of already-loaded evaluations (module docstring): the core of
    :func:`compare`, for results kept elsewhere than in run directories.

    Parameters
    ----------
    groups:
        ``{label: [eval.json result, ...]}``: the runs of each group (e.g. the seeds of one arm).
    baseline:
        The group the others are tested against: its label or its number ``1``, ``2``, ... in
        ``groups`` (default: the first group).
    sampler:
        The sampler whose samples are compared (default: each run's first).
    path:
        The decoding path of the samples, ``ancestral`` (the model) or ``mean``.
    names:
        ``{label: [name of each run]}`` for the report's ``runs`` (default: each result's ``run``).

    Returns
    -------
    dict
        ``baseline``, ``sampler``, ``path``, ``protocols``, ``warnings`` and ``groups``: for each
        label its ``runs``, ``metrics`` (:func:`summarise_metric` of every metric of
        :data:`METRICS`) and, but the baseline, ``against_baseline`` (:func:`verdict`).
    """
    base_label = _baseline_label(baseline, list(groups))
    table: dict[str, dict] = {}
    for label, results in groups.items():
        blocks = [_headline(r, sampler, path) for r in results]
        run_names = (names or {}).get(label) or [str(r.get("run", "?")) for r in results]
        table[label] = {"runs": list(run_names),
                        "metrics": {m: summarise_metric(blocks, m) for m in METRICS}}
    base = table[base_label]["metrics"]
    for label in groups:
        if label != base_label:
            table[label]["against_baseline"] = verdict(table[label]["metrics"], base, METRICS)
    protocols = sorted({_protocol(r) for results in groups.values() for r in results})
    warnings = ([f"the runs were measured under {len(protocols)} protocols, not comparable: "
                 + "; ".join(protocols)] if len(protocols) > 1 else [])
    return {"baseline": base_label, "sampler": sampler or "first of each run",
            "path": path, "protocols": protocols, "warnings": warnings, "groups": table}


def compare(patterns: list[str], *, baseline: str | None = None,
            sampler: str | None = None) -> dict:
    """The comparison of the runs named by ``patterns`` (module docstring): their ``eval.json``
    grouped by spec (:func:`group_runs`), then :func:`compare_results`.

    Parameters
    ----------
    patterns:
        Run directories or globs (``runs/stacked-*``).
    baseline:
        The group the others are tested against: its label, a run directory in it, or its
        number ``1``, ``2``, ... in the table (default: the first group).
    sampler:
        The sampler whose ancestral samples are compared (default: each run's first).
    """
    runs = find_runs(patterns)
    results = {run: json.loads((run / layout.EVAL).read_text()) for run in runs}
    groups = group_runs(runs)
    return compare_results(
        {label: [results[r] for r in members] for label, members in groups.items()},
        baseline=_baseline(baseline, groups), sampler=sampler,
        names={label: [str(r) for r in members] for label, members in groups.items()})


def _baseline(baseline: str | None, groups: dict[str, list[Path]]) -> str | None:
    """The label of the group holding the run directory ``baseline``, else ``baseline``."""
    if baseline is None or baseline in groups or baseline.isdigit():
        return baseline
    for label, members in groups.items():
        if any(Path(baseline).resolve() == m.resolve() for m in members):
            return label
    return baseline


def _baseline_label(baseline: str | None, labels: list[str]) -> str:
    if baseline is None:
        return labels[0]
    if baseline in labels:
        return baseline
    if baseline.isdigit() and 1 <= int(baseline) <= len(labels):
        return labels[int(baseline) - 1]
    raise HierotError(f"compare: --baseline {baseline!r} is no group; give a run directory, a "
                      f"number 1..{len(labels)} or a label: {labels}")


def format_stat(stat: dict, interval_digits: int = 3) -> str:
    """A :func:`summarise_metric` dict as ``mean ± sd [low, high]`` (``-`` when missing), the
    mean to 4 significant digits, the sd to 2, the interval's ends to ``interval_digits``."""
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:.4g}" + (f" ± {stat['std']:.2g}" if stat["std"] else "")
    ci, d = stat.get("interval"), interval_digits
    return text + (f" [{ci[0]:.{d}g}, {ci[1]:.{d}g}]" if ci else "")


def markdown(report: dict) -> str:
    """The comparison as a Markdown table (``mean ± sd [95 % interval]``, Welch's p)."""
    intro = (f"Runs grouped by spec (less seed, device, logging); samples along the "
             f"{report['path']} path of {report['sampler']}; mean ± sd over runs [95 % interval: "
             "Student-t of the mean, or the run's bootstrap interval for one run]; against the "
             f"baseline **{report['baseline']}**: better / worse / tie (means apart by more "
             "than the two sds) and Welch's two-sided p.")
    lines = [intro, ""]
    lines += [f"> warning: {w}" for w in report["warnings"]]
    lines += ["| # | group | runs | " + " | ".join(METRICS) + " |",
              "| --- | --- | ---: |" + " --- |" * len(METRICS)]
    for i, (label, g) in enumerate(report["groups"].items(), 1):
        cells = []
        for m in METRICS:
            text = format_stat(g["metrics"][m])
            v = g.get("against_baseline")
            if v:
                p = v["welch_p"][m]
                text += f" ({v[m]}" + (f", p {p:.2g})" if p is not None else ")")
            cells.append(text)
        name = f"**{label}** (baseline)" if label == report["baseline"] else label
        lines.append(f"| {i} | {name} | {len(g['runs'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["METRICS", "compare", "compare_means", "compare_results", "find_runs", "format_stat",
           "group_runs", "markdown", "mean_std", "summarise_metric", "t_interval", "verdict",
           "welch_p"]
