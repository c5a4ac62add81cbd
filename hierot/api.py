"""The Python API the ``hierot`` command stands on: one function per command, same defaults.

=============================== =============================================================
``hierot validate SPEC``        :func:`validate` (and :func:`load_spec`)
``hierot train SPEC``           :func:`fit` (``--resume DIR``: ``fit(resume=DIR)``)
``hierot eval RUN``             :func:`evaluate`
``hierot plot RUN``             :func:`plot`
``hierot sample RUN``           :func:`sample`
``hierot report RUN``           :func:`report`
``hierot compare RUN ...``      :func:`compare`
``hierot sweep SWEEP``          :func:`sweep` (:func:`hierot.sweeps.driver.run_sweep`, then the
                                report; the sweeps train with :func:`fit`)
``hierot sweep --report DIR``   :func:`sweep_report`
``hierot list [KIND]``          :func:`list_components` (``sweep --list``: its ``sweeps``)
=============================== =============================================================

Each command of :mod:`hierot.cli` parses its arguments, calls the function here and prints what
it returns; a notebook gets what a terminal gets. ``hierot show PRESET`` has no function of its
own: it prints :func:`hierot.spec.read_text` of the preset, or with ``--resolved``
:func:`hierot.spec.dump_spec` of :func:`load_spec`, which a script calls directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hierot.builder import build
from hierot.errors import HierotError, unknown_name_message
from hierot.registry import ALL, Entry
from hierot.spec.loading import load_spec
from hierot.training.session import default_run_dir, fit, validate

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Samples:
    """What :func:`sample` drew: ``x`` ``(n, *data shape)``, the checkpoint's step, and how
    (``"gmm(n_components=20) / ancestral"``)."""

    x: Tensor
    step: int
    how: str


def evaluate(
    run_dir: str | Path, checkpoint: int | str | None = None, *, device: str | None = None,
    samples: int = 10_000, seed: int = 0, samplers: Sequence[str | Mapping] = ("prior",),
    features: str | Mapping = "classifier", resamples: int = 200, per_layer: bool = True,
    weights: Literal["ema", "raw"] | None = None,
) -> dict:
    """``hierot eval``: every metric of a run on its held-out split, written to ``RUN/eval.json``.

    Parameters
    ----------
    run_dir:
        A run directory written by :func:`fit`.
    checkpoint:
        The step of the checkpoint to use (default: the last), or ``"best"``.
    device:
        Where to evaluate (default: the spec's device).
    samples:
        N, the generated samples per sampler and path, measured against a reference set of at
        most N points chosen by the protocol's rule (:mod:`hierot.evaluation.protocol`).
    seed:
        Seed of every random draw.
    samplers:
        Samplers of the top latent whose samples are measured (names or option mappings of the
        ``samplers`` registry, see :mod:`hierot.samplers`); all are checked before any work.
    features:
        The feature extractor of the sample metrics (a name or an option mapping of the
        ``features`` registry, see :mod:`hierot.evaluation.features`).
    resamples:
        Bootstrap resamples behind each 95 % interval (at least 10).
    per_layer:
        Also measure the samples regenerated from every depth (the quantitative Fig. 3b).
    weights:
        ``"ema"``: the moving average of the weights (``train.ema``); ``"raw"``: the trained
        weights; ``None``: the average when the checkpoint holds one, else the trained weights.

    Returns
    -------
    dict
        What ``RUN/eval.json`` holds (:func:`hierot.evaluation.evaluator.format_table` prints it).
    """
    from hierot.evaluation.evaluator import evaluate as evaluate_run
    from hierot.evaluation.features import parse_features
    from hierot.evaluation.trained import load_run
    from hierot.samplers import parse_sampler

    sampler_list = [dict(s) if isinstance(s, Mapping) else s for s in samplers]
    features = dict(features) if isinstance(features, Mapping) else features
    for text in sampler_list:  # a bad sampler, extractor or count fails before any work
        parse_sampler(text)
    parse_features(features)
    if resamples < 10:
        raise HierotError(f"--resamples must be at least 10, got {resamples}")
    run = load_run(run_dir, checkpoint, device=device, weights=weights)
    return evaluate_run(run, samples=samples, seed=seed, samplers=sampler_list,
                        features=features, resamples=resamples, per_layer=per_layer)


def plot(
    run_dir: str | Path, checkpoint: int | str | None = None, *, device: str | None = None,
    embedding: Literal["pca", "umap"] = "pca", weights: Literal["ema", "raw"] | None = None,
) -> list[Path]:
    """``hierot plot``: a run's figures into ``RUN/figures``, then ``RUN/report.md``.

    ``embedding`` projects latent layers wider than 2-D (``pca``, or ``umap`` as the paper's
    figures, whose compilation takes about half a minute); ``weights`` as in :func:`evaluate`.
    Returns the paths written, the report last.
    """
    from hierot.evaluation.figures import plot_run
    from hierot.evaluation.report import write_report
    from hierot.evaluation.trained import load_run

    if embedding not in ("pca", "umap"):
        raise HierotError(f"plot: embedding must be pca or umap, got {embedding!r}")
    run = load_run(run_dir, checkpoint, device=device, weights=weights)
    written = plot_run(run, embedding=embedding)
    return [*written, write_report(run_dir)]


def sample(
    run_dir: str | Path, n: int = 64, *, out: str | Path | None = None,
    checkpoint: int | str | None = None, device: str | None = None, seed: int = 0,
    sampler: str | Mapping = "prior", path: Literal["ancestral", "mean"] = "ancestral",
    weights: Literal["ema", "raw"] | None = None,
) -> Samples:
    """``hierot sample``: ``n`` samples of x from a trained run (:class:`Samples`, on the CPU).

    Parameters
    ----------
    run_dir, checkpoint, device, weights:
        As in :func:`evaluate`.
    n:
        Number of samples.
    out:
        Also write them: ``FILE.png`` an image grid (a scatter plot for vector data),
        ``FILE.pt`` the tensor ``(n, *shape)``; ``None`` writes nothing.
    seed:
        Seed of the samples of the top latent and of each layer's noise.
    sampler:
        Sampler of the top latent, a name or an option mapping of the ``samplers`` registry.
    path:
        ``ancestral`` (each layer's noise: the model) or ``mean`` (the decoders' means).
    """
    import torch

    from hierot.evaluation.samplers import draw, fitted, label
    from hierot.evaluation.trained import load_run
    from hierot.samplers import parse_sampler

    if n < 1:
        raise HierotError(f"sample: -n must be at least 1, got {n}")
    target = Path(out) if out is not None else None
    if target is not None and target.suffix.lower() not in (".png", ".pt"):
        raise HierotError(f"sample: --out {target} must end in .png (an image grid) or .pt "
                          "(a tensor)")
    options = parse_sampler(dict(sampler) if isinstance(sampler, Mapping) else sampler)
    run = load_run(run_dir, checkpoint, device=device, weights=weights)
    drawn = draw(run.model, fitted(run, options, seed=seed), n, path, seed=seed,
                 device=run.device)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix.lower() == ".pt":
            torch.save(drawn, target)
        else:
            from hierot.evaluation.plotting import samples_figure

            title = (f"{len(drawn)} samples ({label(options)} / {path}), "
                     f"{run.run_dir.path.name}, step {run.step}")
            samples_figure(drawn, run.model.data_shape, run.data.test_x, title, target)
    return Samples(drawn, run.step, f"{label(options)} / {path}")


def report(run_dir: str | Path) -> Path:
    """``hierot report``: write ``RUN/report.md`` from the run's spec, ``eval.json`` and figures
    (those present); returns its path. :func:`plot` writes it too, after the figures."""
    from hierot.evaluation.report import write_report

    return write_report(run_dir)


def compare(runs: Iterable[str | Path], *, baseline: str | None = None,
            sampler: str | None = None) -> dict:
    """Compare evaluated runs: groups by spec, mean ± sd, intervals, Welch's t-test.

    Parameters
    ----------
    runs:
        Run directories or globs, each with an ``eval.json``.
    baseline:
        The group the others are tested against (a label, a run directory in it, or its number);
        default the first.
    sampler:
        The sampler whose ancestral samples are compared (default each run's first).

    Returns
    -------
    dict
        ``baseline``, ``protocols``, ``warnings`` and ``groups`` (see
        :mod:`hierot.evaluation.compare`; :func:`hierot.evaluation.compare.markdown` renders it).
    """
    from hierot.evaluation.compare import compare as compare_runs

    return compare_runs([str(r) for r in runs], baseline=baseline, sampler=sampler)


@dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` leaves: trials counted by state, the report written, the best trial
    (``number``, ``params``, ``value``; ``None`` before one completes) and its metric's name, and
    a note when trials are still running or waiting elsewhere."""

    counts: dict[str, int]
    report: Path
    best: dict[str, Any] | None
    metric: str
    note: str | None


def sweep(
    source: str | Path | Mapping[str, Any], out: str | Path, *,
    grid: Mapping[str, Sequence[Any]] | None = None, base: str | None = None,
    overrides: Iterable[str] = (), seeds: int | None = None, metric: str | None = None,
    direction: Literal["minimize", "maximize"] | None = None,
    sampler: Literal["auto", "grid", "tpe", "random"] | None = None, trials: int | None = None,
    workers: int = 1, threads: int | None = None, storage: str | None = None,
    retry_failed: bool = False, stale_after: float = 120.0,
) -> SweepResult:
    """``hierot sweep``: run (or continue) a hyperparameter sweep into ``out``, then its report.

    Parameters
    ----------
    source:
        A sweep file, a sweep preset name or a mapping of the sweep file's fields; with
        ``grid``, the base spec or preset instead (an inline sweep named after ``out``).
    out:
        The sweep directory (created, or continued when it holds the same sweep).
    grid:
        An inline sweep: ``{"a.b": [v1, v2]}``, a grid over each spec field.
    base:
        Replaces the sweep file's base spec or preset (not with ``grid``).
    overrides:
        ``"a.b=value"`` spec overrides for every trial (the budget).
    seeds, metric, direction, sampler, trials:
        Replace the sweep file's fields: seed replicates per point, ``heldout.<key>`` or
        ``eval.<key>``, ``minimize``/``maximize``, the Optuna sampler, points to try (tpe,
        random).
    workers, threads, storage, retry_failed, stale_after:
        As :func:`hierot.sweeps.driver.run_sweep`: worker processes here, torch threads each,
        an Optuna database shared by many machines, retry failed grid points, seconds without a
        heartbeat before another machine's trial counts as dead.

    Returns
    -------
    SweepResult
        Also written: ``out/report.md``, ``trials.json`` and the figures
        (:func:`hierot.sweeps.report.write_report`).
    """
    from hierot.sweeps._locations import partial_note
    from hierot.sweeps.driver import run_sweep
    from hierot.sweeps.report import collect, ranked, write_report

    updates = {k: v for k, v in (("seeds", seeds), ("metric", metric), ("direction", direction),
                                 ("sampler", sampler), ("trials", trials)) if v is not None}
    if grid:
        if base is not None:
            raise HierotError("sweep: with --grid, SWEEP is the base; --base is for sweep files")
        source = {"name": Path(out).name, "base": source,
                  "params": {k: list(v) for k, v in grid.items()}, **updates}
        updates = {}
    counts = run_sweep(source, out, overrides=list(overrides), updates=updates, base=base,
                       workers=workers, threads=threads, storage=storage,
                       retry_failed=retry_failed, stale_after=stale_after)
    report = write_report(out, storage)
    swept, records = collect(Path(out), storage)
    best = ranked(swept, records)
    return SweepResult(counts, report, best[0] if best else None, swept.resolved_metric,
                       partial_note(records))


def sweep_report(out: str | Path, *, eval_top: int = 0, eval_samples: int = 5000,
                 storage: str | None = None) -> Path:
    """``hierot sweep --report DIR``: write a sweep's ``report.md``, ``trials.json`` and figures.

    Parameters
    ----------
    out:
        The sweep directory (:func:`sweep`'s ``out``); the sweep may still be running.
    eval_top:
        First run :func:`evaluate` on the ``eval_top`` best points (0: none), so the report
        shows their FCD and probe accuracy.
    eval_samples:
        Samples of each of those evaluations' FCD.
    storage:
        The Optuna database of a sweep run with ``storage=`` (default ``out/journal.log``).

    Returns
    -------
    Path
        The report (:func:`hierot.sweeps.report.write_report`).
    """
    from hierot.sweeps.report import evaluate_top, write_report

    if eval_top:
        evaluate_top(Path(out), eval_top, storage, samples=eval_samples)
    return write_report(out, storage)


@dataclass(frozen=True)
class Listing:
    """What :func:`list_components` finds of one kind: its entries (``name``, ``summary`` and
    ``source``: ``"hierot"`` or the plug-in's package) and the plug-ins that failed to load."""

    kind: str
    entries: list[Entry]
    plugin_errors: list[str]


def list_components(kind: str | None = None) -> dict[str, Listing]:
    """``hierot list [KIND]``: the registered components (plug-ins too) of ``kind``, or of every
    kind (``networks``, ``costs``, ..., ``samplers``, ``sweeps``: :data:`hierot.registry.ALL`).

    Named so as not to hide Python's ``list``; a :class:`HierotError` names an unknown kind with
    the valid ones.
    """
    if kind is not None and kind not in ALL:
        raise HierotError(unknown_name_message("kind", kind, ALL))
    kinds = [kind] if kind is not None else list(ALL)
    return {k: Listing(k, ALL[k].entries(), list(ALL[k].plugin_errors)) for k in kinds}


__all__ = ["Listing", "Samples", "SweepResult", "build", "compare", "default_run_dir", "evaluate",
           "fit", "list_components", "load_spec", "plot", "report", "sample", "sweep",
           "sweep_report", "validate"]
