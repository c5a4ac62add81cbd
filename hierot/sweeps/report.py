"""``hierot sweep --report DIR``: the trials, the best point and figures, into the sweep directory.

::

    DIR/report.md        a table of every point (params, metric mean +- sd over seeds, held-out
                         reconstruction and top divergence, hierot eval's FCD and probe where run)
    DIR/trials.json      the same, machine-readable, with every trial's state and error
    DIR/heatmap*.png     two-parameter grids: the metric (and rec_x, the top match) over the grid
    DIR/metric-vs-*.png  otherwise: the metric against each parameter

The report is read from the study (the storage), so it can be written while the sweep runs, and
from the run directories (``heldout.json``, ``eval.json``) where they are on this machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hierot.errors import HierotError
from hierot.run import atomic_write_text, layout
from hierot.sweeps import _optuna
from hierot.sweeps._directory import read_sweep_dir, study_info
from hierot.sweeps._locations import location, partial_note, situation, where
from hierot.sweeps._worker import counted
from hierot.sweeps.schema import SweepSpec, override

REPORT, TRIALS = "report.md", "trials.json"


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _eval_numbers(run: Path) -> dict[str, float]:
    """FCD and the top-latent probe accuracy from ``RUN/eval.json``, when evaluated."""
    file = run / layout.EVAL
    if not file.is_file():
        return {}
    result = json.loads(file.read_text())
    out = {}
    if "fcd" in result.get("sample_quality", {}):
        out["fcd"] = result["sample_quality"]["fcd"]
    accuracy = result.get("probe", {}).get("accuracy", {})
    if accuracy:
        top = list(accuracy)[-1]
        out[f"probe_{top}"] = accuracy[top]
    return out


def collect(sweep_dir: Path, storage_url: str | None = None) -> tuple[SweepSpec, list[dict]]:
    """The sweep and one record per trial (flagged ones included), from the study and run dirs."""
    sweep, _ = read_sweep_dir(sweep_dir)
    info = study_info(sweep_dir)
    if storage_url is None and info and not info.get("journal", True):
        raise HierotError(f"{sweep_dir}: the study is in {info['storage']}; give --storage URL")
    study = _optuna.open_study(sweep, _optuna.open_storage(storage_url, sweep_dir), create=False)
    records = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        record: dict[str, Any] = {
            "number": trial.number, "state": trial.state.name, "counted": counted(trial),
            "params": sweep.decode(trial.params or trial.system_attrs.get("fixed_params", {})),
            "value": trial.value, "sd": attrs.get("sd"), "run_dir": attrs.get("run_dir"),
            "seconds": attrs.get("seconds"), "cpu_seconds": attrs.get("cpu_seconds"),
        }
        for key in ("error", "superseded", "duplicate_of", "retry_of", "pruned"):
            if key in attrs:
                record[key] = attrs[key]
        record.update(where(sweep_dir, attrs))
        seeds = attrs.get("seeds", [])
        record["seeds"] = seeds
        terms = [s["heldout"] for s in seeds]
        if terms:
            record["heldout"] = {k: _mean([t.get(k) for t in terms]) for k in terms[0]}
            record["heldout_total"] = _mean([s["heldout_total"] for s in seeds])
        evals = [_eval_numbers(sweep_dir / "trials" / str(attrs.get("run_dir")) / s["run_dir"])
                 for s in seeds] if record["here"] else []
        evals = [e for e in evals if e]
        if evals:
            record["eval"] = {k: _mean([e.get(k) for e in evals]) for k in evals[0]}
            record["eval_seeds"] = len(evals)
        records.append(record)
    return sweep, records


def ranked(sweep: SweepSpec, records: list[dict]) -> list[dict]:
    """Completed, counted trials, best first."""
    done = [r for r in records
            if r["state"] == "COMPLETE" and r["counted"] and r["value"] is not None]
    return sorted(done, key=lambda r: r["value"], reverse=sweep.direction == "maximize")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _match_key(records: list[dict]) -> str | None:
    for r in records:
        for key in r.get("heldout", {}):
            if key.startswith("match"):
                return key
    return None


def _summary(sweep: SweepSpec, records: list[dict], best: list[dict],
             sweep_dir: Path) -> list[str]:
    """The report's opening lines: the sweep's set-up, its trials and time, the best point."""
    counts: dict[str, int] = {}
    for r in records:
        key = r["state"] if r["counted"] else "superseded/duplicate"
        counts[key] = counts.get(key, 0) + 1
    lines = [
        f"# Sweep {sweep.name}", "",
        sweep.description or "", "",
        f"- base: `{sweep.base}`; budget: "
        + (", ".join(f"`{override(k, v)}`" for k, v in sweep.budget.items()) or "none"),
        (f"- sampler: {sweep.resolved_sampler}; seeds per point: {sweep.seeds}; "
        f"metric: `{sweep.resolved_metric}` ({sweep.direction}), the mean over seeds"),
        "- trials: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
        *situation(sweep_dir, records),
    ]
    timed = [r for r in records if r.get("seconds") is not None and r["counted"]]
    if timed:
        cpu = [r["cpu_seconds"] for r in timed if r.get("cpu_seconds") is not None]
        lines.append(f"- time of the {len(timed)} finished trials: "
                     f"{sum(r['seconds'] for r in timed) / 60:.1f} min wall in all"
                     + (f", {sum(cpu) / 60:.1f} min CPU in the workers" if cpu else ""))
    lines.append("")
    if best:
        top = best[0]
        point = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in top["params"].items())
        lines += [f"**Best point** (trial {top['number']}): {point}: "
                  f"{sweep.resolved_metric} = {_fmt(top['value'], 6)}"
                  + (f" ± {_fmt(top['sd'], 3)} (mean ± sd over {sweep.seeds} seeds)"
                     if sweep.seeds > 1 else " (one seed: no sd)"), ""]
    if sweep.resolved_metric == "heldout.total" and len(best) > 1:
        lines += [("The held-out objective of a trial is its own objective, weighted by its own "
                  "parameters: where the parameters are weights (λ), comparing totals compares "
                  "different objectives (as the paper's selection by Eq. (10) does). The held-out "
                  "reconstruction `rec_x` and the top divergence are the unweighted terms."), ""]
    return lines


def _table(sweep: SweepSpec, records: list[dict], best: list[dict], match: str | None,
           eval_keys: list[str]) -> list[str]:
    """The report's table: every counted trial, the ranked (completed) ones first, best first."""
    names = list(sweep.params)
    header = ["rank", "trial", *[n.rsplit(".", 1)[-1] for n in names],
              f"{sweep.resolved_metric} (mean ± sd, {sweep.seeds} seeds)" if sweep.seeds > 1
              else f"{sweep.resolved_metric} (one seed: no sd)", "rec_x"]
    if match:
        header.append(match)
    header += eval_keys + ["state", "ran on", "run directory"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = best + [r for r in records if r not in best and r["counted"]]
    for rank, r in enumerate(order, 1):
        value = _fmt(r["value"], 5)
        if sweep.seeds > 1 and r["sd"] is not None:
            value += f" ± {_fmt(r['sd'], 2)}"
        row = [str(rank) if r in best else "-", str(r["number"]),
               *[_fmt(r["params"].get(n)) for n in names], value,
               _fmt(r.get("heldout", {}).get("rec_x"))]
        if match:
            row.append(_fmt(r.get("heldout", {}).get(match)))
        row += [_fmt(r.get("eval", {}).get(k)) for k in eval_keys]
        row += [r["state"] + (f" (retry of {r['retry_of']})" if "retry_of" in r else "")
                + (f" at step {r['pruned']['step']} of {r['pruned']['run_dir']}"
                   if "pruned" in r else ""),
                r.get("host") or "-", location(r)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _markdown(sweep: SweepSpec, records: list[dict], figures: list[str], base_yaml: str,
              sweep_dir: Path) -> str:
    best = ranked(sweep, records)
    match = _match_key(records)
    eval_keys = sorted({k for r in records for k in r.get("eval", {})})
    lines = _summary(sweep, records, best, sweep_dir)
    lines += _table(sweep, records, best, match, eval_keys)
    failed = [r for r in records if r["state"] == "FAIL" and r["counted"]]
    if failed:
        lines += ["", "## Failed trials", ""]
        lines += [f"- trial {r['number']} ({_fmt(r['params'])}): "
                  f"{r.get('error', 'no error recorded')}" for r in failed]
    if eval_keys:
        lines += ["",
                  (f"{', '.join(eval_keys)}: from `hierot eval` (`eval.json` of each seed's run "
                  "directory, averaged over the seeds evaluated); `-` where not evaluated.")]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    lines += ["", "## Base spec (budget applied)", "", "```yaml", base_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


# -- figures -------------------------------------------------------------------------------------
def _log_spaced(values: list[Any]) -> bool:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and min(numbers) > 0 and max(numbers) / min(numbers) >= 10


def cell_labels(grid, least: int = 3, most: int = 8):
    """The heat map's cell texts: the fewest significant digits (``least`` to ``most``) that
    tell every two different values apart (``25.4`` and ``25.4`` become ``25.41``, ``25.43``)."""
    import numpy as np

    finite = sorted({float(v) for v in grid[np.isfinite(grid)]})
    digits = least
    while digits < most and len({f"{v:.{digits}g}" for v in finite}) < len(finite):
        digits += 1
    return np.vectorize(lambda v: f"{v:.{digits}g}" if np.isfinite(v) else "", otypes=[object])(
        grid)


def _heatmaps(sweep: SweepSpec, records: list[dict], sweep_dir: Path) -> list[str]:
    import numpy as np
    from matplotlib.patches import Rectangle

    from hierot.evaluation.plotting import new_figure, save

    (row_name, rows), (col_name, cols) = list(sweep.params.items())
    assert isinstance(rows, list) and isinstance(cols, list)  # called for two grid parameters
    done = ranked(sweep, records)
    match = _match_key(records)
    panels: list[tuple[str, str, Callable[[dict], float | None]]] = [
        ("heatmap.png", sweep.resolved_metric, lambda r: r["value"]),
        ("heatmap-rec_x.png", "held-out rec_x", lambda r: r.get("heldout", {}).get("rec_x"))]
    if match:
        panels.append((f"heatmap-{match}.png", f"held-out {match} (unweighted)",
                       lambda r: r.get("heldout", {}).get(match)))
    written = []
    for file, title, get in panels:
        grid = np.full((len(rows), len(cols)), np.nan)
        for r in done:
            i, j = rows.index(r["params"][row_name]), cols.index(r["params"][col_name])
            value = get(r)
            grid[i, j] = np.nan if value is None else value
        if np.isnan(grid).all():
            continue
        figure = new_figure(1.2 * len(cols) + 2.5, 0.9 * len(rows) + 1.8)
        ax = figure.subplots()
        finite = grid[np.isfinite(grid)]
        shown = np.log10(grid) if finite.min() > 0 and finite.max() / finite.min() > 100 else grid
        image = ax.imshow(shown, cmap="viridis_r" if sweep.direction == "minimize" else "viridis",
                          aspect="auto")
        bar = figure.colorbar(image, ax=ax)
        bar.set_label(("log10 " if shown is not grid else "") + title)
        labels = cell_labels(grid)
        for i in range(len(rows)):
            for j in range(len(cols)):
                if np.isfinite(grid[i, j]):
                    red, green, blue, _ = image.cmap(image.norm(shown[i, j]))
                    light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                    ax.text(j, i, labels[i, j], ha="center", va="center", fontsize=8,
                            color="black" if light else "white")
        if done and file == "heatmap.png":
            best = done[0]["params"]
            ax.add_patch(Rectangle(
                (cols.index(best[col_name]) - 0.5, rows.index(best[row_name]) - 0.5), 1, 1,
                fill=False, edgecolor="red", linewidth=2.5))
        ax.set_xticks(range(len(cols)), [_fmt(v) for v in cols])
        ax.set_yticks(range(len(rows)), [_fmt(v) for v in rows])
        log = " (log-spaced grid)"
        ax.set_xlabel(col_name + (log if _log_spaced(cols) else ""))
        ax.set_ylabel(row_name + (log if _log_spaced(rows) else ""))
        ax.set_title(f"{sweep.name}: {title}" + (" (best boxed)" if file == "heatmap.png" else ""))
        save(figure, sweep_dir / file)
        written.append(file)
    return written


def _against_params(sweep: SweepSpec, records: list[dict], sweep_dir: Path) -> list[str]:
    from hierot.evaluation.plotting import new_figure, save

    done = ranked(sweep, records)
    written = []
    for name, param in sweep.params.items():
        xs = [r["params"][name] for r in done]
        if not xs:
            continue
        figure = new_figure(6, 4)
        ax = figure.subplots()
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        if numeric:
            ax.scatter(xs, [r["value"] for r in done], s=18)
            if getattr(param, "log", False) or (isinstance(param, list) and _log_spaced(param)):
                ax.set_xscale("log")
        else:
            labels = sorted({str(x) for x in xs})
            ax.scatter([labels.index(str(x)) for x in xs], [r["value"] for r in done], s=18)
            ax.set_xticks(range(len(labels)), labels)
        ax.scatter([done[0]["params"][name]] if numeric else [sorted({str(x) for x in xs}).index(
            str(done[0]["params"][name]))], [done[0]["value"]], s=60, facecolors="none",
            edgecolors="red", label="best")
        ax.set_xlabel(name)
        ax.set_ylabel(sweep.resolved_metric)
        ax.legend()
        file = f"metric-vs-{name}.png"
        save(figure, sweep_dir / file)
        written.append(file)
    return written


def evaluate_top(sweep_dir: Path, n: int, storage_url: str | None = None, samples: int = 5000,
                 log=print) -> list[Path]:
    """Run ``hierot eval`` on every seed of the ``n`` best points that has no ``eval.json``."""
    from hierot.evaluation.evaluator import evaluate

    sweep, records = collect(sweep_dir, storage_url)
    done = []
    for record in ranked(sweep, records)[:n]:
        for seed in record["seeds"]:
            run = sweep_dir / "trials" / record["run_dir"] / seed["run_dir"]
            if run.is_dir() and not (run / layout.EVAL).is_file():
                log(f"evaluating {run}")
                evaluate(run, samples=samples)
                done.append(run)
    return done


def write_report(sweep_dir: str | Path, storage_url: str | None = None) -> Path:
    """Write ``report.md``, ``trials.json`` and the figures into ``sweep_dir``; the report."""
    sweep_dir = Path(sweep_dir)
    sweep, records = collect(sweep_dir, storage_url)
    _, base_yaml = read_sweep_dir(sweep_dir)
    best = ranked(sweep, records)
    figures: list[str] = []
    if best:
        grids = [p for p in sweep.params.values() if isinstance(p, list)]
        two_grids = len(sweep.params) == len(grids) == 2
        figures = (_heatmaps if two_grids else _against_params)(sweep, records, sweep_dir)
    payload = {"sweep": sweep.model_dump(mode="json"),
               "best": best[0] if best else None, "trials": records}
    atomic_write_text(sweep_dir / TRIALS, json.dumps(payload, indent=2, default=str))
    path = sweep_dir / REPORT
    atomic_write_text(path, _markdown(sweep, records, figures, base_yaml, sweep_dir))
    return path


__all__ = ["cell_labels", "collect", "evaluate_top", "partial_note", "ranked",
           "write_report"]
