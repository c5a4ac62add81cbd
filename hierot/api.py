"""The Python API the ``hierot`` command stands on: one function per command, same defaults.

=============================== =============================================================
``hierot validate SPEC``        :func:`validate` (and :func:`load_spec`)
``hierot train SPEC``           :func:`fit` (``--resume DIR``: ``fit(resume=DIR)``)
``hierot eval RUN``             :func:`evaluate`
``hierot plot RUN``             :func:`plot`
``hierot sample RUN``           :func:`sample`
``hierot sweep SWEEP``          ``hierot.sweep`` (:func:`hierot.sweeps.driver.run_sweep`; sweeps
                                stand on :func:`fit`, so they live a layer above this module)
=============================== =============================================================

Each command of :mod:`hierot.cli` parses its arguments, calls the function here and prints what
it returns; a notebook gets what a terminal gets.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hierot.builder import Built, build
from hierot.callbacks import Callback, build_callbacks
from hierot.errors import HierotError
from hierot.spec.loading import dump_spec, load_spec
from hierot.spec.run_spec import load_run_spec
from hierot.spec.schema import Spec
from hierot.training import resume as resuming
from hierot.training.distributed import from_environment
from hierot.training.rundir import RunDir, atomic_write_text
from hierot.training.runtime import Runtime
from hierot.training.trainer import CHECKPOINT_FORMAT, Trainer, TrainResult, total_steps

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Samples:
    """What :func:`sample` drew: ``x`` ``(n, *data shape)``, the checkpoint's step, and how
    (``"gmm(n_components=20) / ancestral"``)."""

    x: Tensor
    step: int
    how: str


def _say(message: str) -> None:
    print(f"hierot: {message}", file=sys.stderr)


def default_run_dir(source: Any, root: str | Path = "runs") -> Path:
    """``runs/<spec or preset name>-<YYYYmmdd-HHMMSS>``."""
    name = Path(str(source)).stem if isinstance(source, (str, Path)) else "run"
    return Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def validate(
    spec: Spec | str | Path | Mapping[str, Any], overrides: Iterable[str] = ()
) -> Spec:
    """The validated spec of ``hierot validate``: a file, a preset, a mapping or a :class:`Spec`.

    A :class:`Spec` is validated again (one changed with pydantic's ``model_copy`` skipped
    validation). Nothing is built or written.

    Raises
    ------
    SpecError
        Every problem, one ``path: message`` line each.
    """
    if isinstance(spec, Spec):
        return load_spec(spec.model_dump(mode="json"), overrides, label="<Spec>")
    return load_spec(spec, overrides)


def fit(
    spec: Spec | str | Path | Mapping[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    save: bool = True,
    overrides: Iterable[str] = (),
    resume: str | Path | None = None,
    runtime: Runtime | None = None,
    built: Built | None = None,
    callbacks: Iterable[Callback] = (),
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a hierarchy.

    Parameters
    ----------
    spec:
        A :class:`Spec` (validated again, see :func:`validate`), a YAML file, a preset name or a
        mapping (ignored with ``resume``).
    out:
        Run directory to create; ``None``: ``runs/NAME-TIME`` as ``hierot train`` makes it
        (:func:`default_run_dir`).
    save:
        ``False`` trains without writing anything (``out`` must then be ``None``).
    overrides:
        ``"a.b=value"`` strings applied before validation (with ``resume`` too, e.g. to extend
        ``train.steps``).
    resume:
        A run directory to continue from its newest intact checkpoint, exactly as if never
        stopped (from step 0 when it has none). ``overrides`` may change only the fields of
        :data:`hierot.training.resume.RESUMABLE`; they are recorded in ``RUN/changes.jsonl``.
        Anything else raises :class:`~hierot.errors.RunChangedError` and nothing in the run is
        changed.
    runtime:
        Device and data-parallel rank (default: one process on ``spec.device``).
    built:
        Already built modules for ``spec`` (skips the builder).
    callbacks:
        :class:`~hierot.callbacks.Callback` objects called beside the spec's ``callbacks``.
    init_from:
        A run directory whose newest intact checkpoint's model weights start this new run (the
        optimiser, data order and step start afresh); the architectures must match. Recorded
        in ``OUT/origin.json``.
    """
    overrides = list(overrides)
    changes: list[resuming.Change] = []
    if not save and (out is not None or resume is not None):
        raise HierotError("fit: save=False writes nothing; it cannot take out= or resume=")
    if save and out is None and resume is None:
        out = default_run_dir(spec)
    run_dir: RunDir | None
    if resume is not None:
        if init_from is not None:
            raise HierotError("--init-from starts a new run; it cannot be combined with --resume")
        run_dir = RunDir(resume)
        run_dir.require()
        run_dir.read_metrics()  # a damaged metrics.csv is named before anything is written
        spec = load_run_spec(run_dir.path, overrides)
        changes = resuming.check_resume(run_dir, load_run_spec(run_dir.path), spec)
    elif spec is None:
        raise HierotError("fit: give a spec (a preset name, a file, a mapping or a Spec), "
                          "or resume= a run directory")
    else:
        spec = validate(spec, overrides)
    runtime = runtime or from_environment(spec.device, spec.distributed)
    if resume is None:
        out = runtime.broadcast(out)  # rank 0's choice (a default name holds a timestamp)
        run_dir = RunDir(out) if out is not None else None
        if run_dir is not None:
            run_dir.ensure_new()
    runtime.barrier()  # every rank has read and checked the run directory before rank 0 writes
    if run_dir is not None and runtime.is_main:  # trackers: the main process of a run only
        callbacks = [*build_callbacks(spec, run_dir), *callbacks]
    trainer = Trainer(built or build(spec, gather=runtime.gather), run_dir, runtime,
                      callbacks=tuple(callbacks))
    if resume is not None:
        assert run_dir is not None  # RunDir(resume), above
        _resume(trainer, run_dir, changes)
    else:
        origin = None
        if init_from is not None:
            origin, skipped = resuming.init_from(trainer.model, init_from, CHECKPOINT_FORMAT)
            if trainer.run_dir is not None:
                for problem in skipped:
                    _say(f"skipped {problem}")
        if trainer.run_dir is not None:
            trainer.run_dir.create(dump_spec(spec))
            if origin is not None:
                atomic_write_text(trainer.run_dir.origin_file, json.dumps(origin, indent=2))
    return trainer.fit()


def _resume(trainer: Trainer, run_dir: RunDir, changes: list[resuming.Change]) -> None:
    """Load the newest intact checkpoint (reading only), then, on the main process, tidy the run
    directory and record what changed: only after everything that can fail has passed."""
    used, skipped = resuming.restore(trainer, run_dir, CHECKPOINT_FORMAT)
    budget = total_steps(trainer.built, trainer.order)
    if budget < trainer.step:
        raise HierotError(
            f"--resume {run_dir.path}: the run has reached step {trainer.step}; a budget of "
            f"{budget} steps would end before it (nothing was changed)"
        )
    if trainer.run_dir is None:
        return
    run_dir.remove_temporaries()
    for problem in skipped:
        _say(f"skipped {problem}")
    if used is None:
        _say(f"{run_dir.path} holds no checkpoint yet: training it again from step 0 "
             f"(seed {trainer.spec.seed})")
        run_dir.metrics_file.unlink(missing_ok=True)  # rows of steps that no checkpoint kept
    elif skipped:
        _say(f"resuming from {run_dir.relative(used)} (step {trainer.step}), "
             f"the newest intact checkpoint")
    if changes or skipped:
        notes = {"skipped": skipped} if skipped else {}
        resuming.record(run_dir, trainer.step, changes, **notes)
    if changes:
        atomic_write_text(run_dir.spec_file, dump_spec(trainer.spec))
    run_dir.truncate_metrics(trainer.step)


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



__all__ = ["Samples", "build", "compare", "default_run_dir", "evaluate", "fit", "load_spec",
           "plot", "sample", "validate"]
