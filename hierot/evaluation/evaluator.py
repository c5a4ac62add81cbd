"""Every metric of a run on its held-out split: ``RUN/eval.json`` and a table for the terminal.

See ``docs/evaluation.md`` for what each number means and where it stops meaning it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from hierot.evaluation import _metrics as metrics
from hierot.evaluation._bootstrap import RESAMPLES
from hierot.evaluation._whole_set import whole_set_divergence
from hierot.evaluation.protocol import SAMPLES, check_samples, reference_split
from hierot.evaluation.trained import LoadedRun, encode, load_run, subset
from hierot.run import atomic_write_text, layout

FCD_NAME = "Fréchet classifier distance (FCD)"
EVAL_FILE = layout.EVAL


def evaluate(
    path: str | Path | LoadedRun, checkpoint: int | str | None = None, *, device: str | None = None,
    samples: int = SAMPLES, divergence_samples: int = 1000, probe_train: int = 10000,
    likelihood_points: int = 1000, likelihood_samples: int = metrics.IW_SAMPLES,
    seed: int = 0, write: bool = True, samplers: Sequence[str | dict] = ("prior",),
    features: str | dict = "classifier", resamples: int = RESAMPLES, per_layer: bool = True,
) -> dict:
    """Evaluate a run on its test split; write ``RUN/eval.json`` when ``write``.

    Parameters
    ----------
    path:
        A run directory (or a run already loaded with :func:`~hierot.evaluation.load_run`).
    checkpoint:
        The checkpoint step (default: the last; ``"best"``: ``best.pt``).
    device:
        Device to evaluate on (default: the spec's).
    samples:
        N, the generated samples per sampler and path, against a reference set of at most N
        points (:mod:`hierot.evaluation.protocol`); also the held-out points regenerated from
        every depth.
    divergence_samples:
        At most this many encoded test points (and as many prior samples) per top divergence.
    probe_train:
        At most this many training points to fit each linear probe.
    likelihood_points, likelihood_samples:
        For objectives that are density models of x (the VAEs): the importance-weighted
        log p(x) on at most this many test points with this many importance samples K each.
    seed:
        Seeds every random draw (prior samples, subsets, reparameterisations).
    write:
        Write ``eval.json`` into the run directory.
    samplers:
        Post-hoc samplers of the top latent whose samples are measured, each a name or options
        (:mod:`hierot.evaluation.samplers`); every one along both decoding paths, ``ancestral``
        and ``mean``. The first gives the headline ``fcd``.
    features:
        The feature extractor, a name or options (:mod:`hierot.evaluation.features`).
    resamples:
        Bootstrap resamples of every interval.
    per_layer:
        Measure held-out data regenerated from every depth (the quantitative Figure 3b).

    Returns
    -------
    dict
        The contents of ``eval.json`` (see ``docs/evaluation.md`` for every key).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    @contextmanager
    def timed(name: str):
        t = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t, 3)

    with timed("load"):
        run = path if isinstance(path, LoadedRun) else load_run(path, checkpoint, device=device)
    data, spec, where = run.data, run.spec, run.device
    objective = run.objective
    labelled = data.train_y is not None and data.test_y is not None
    with timed("features"):  # bad --features or --samples fail before any other work
        extractor = _extractor(run, features, seed)
        if extractor is not None:
            split = reference_split(len(data.test_x), len(data.train_x), samples)
            reference = min(samples, len(getattr(data, f"{split}_x")))
            check_samples(samples, tuple(data.shape), extractor.dim, reference)
    result = _header(run, seed)
    with timed("objective"):
        result["objective"] = metrics.objective_terms(
            run.built.objective, data.test_x, spec.train.batch_size, device=where, seed=seed)
    with timed("reconstruction"):
        result["reconstruction"] = metrics.reconstruction_errors(
            objective, data.test_x, device=where)
    with timed("top_divergence"):
        result["top_divergence"] = metrics.top_divergences(
            objective, data.test_x, n=divergence_samples, device=where, seed=seed)
    with timed("whole_set_divergence"):  # the run's divergence, every training point (online)
        result["whole_set_divergence"] = whole_set_divergence(
            objective, run.train_x, spec.divergence, device=where, seed=seed)
    with timed("active_units"):
        result["active_units"] = metrics.active_units(
            objective, data.test_x, device=where, seed=seed)
    with timed("kl"):
        result["kl"] = metrics.kl_per_layer(objective, data.test_x, device=where, seed=seed)
    with timed("likelihood"):
        result["likelihood"] = _likelihood(run, likelihood_points, likelihood_samples, seed)
    with timed("probe"):
        result["probe"] = _probes(run, probe_train, seed) if labelled else {
            "skipped": "the data set has no labels"}
    with timed("sample_quality"):
        result["sample_quality"] = _sample_quality(
            run, samples, seed, samplers, extractor, resamples, per_layer,
        ) if extractor is not None else {
            "metric": FCD_NAME, "skipped": "the data set has no labels to train a classifier on "
            "(choose --features inception or dinov2 with a weights file)"}
    result["timings_s"] = timings
    result["wall_time_s"] = round(time.perf_counter() - started, 3)
    if write:
        text = json.dumps(result, indent=2, ensure_ascii=False)
        atomic_write_text(run.run_dir.eval_file, text)
    return result


def _header(run: LoadedRun, seed: int) -> dict:
    """What ``eval.json`` records of the run itself: checkpoint, data, objective, shapes."""
    model, data, spec = run.model, run.data, run.spec
    return {
        "run": str(run.run_dir.path),
        "checkpoint": run.checkpoint.relative_to(run.run_dir.path).as_posix(),
        "step": run.step,
        "model_weights": run.weights,
        "device": str(run.device),
        "dataset": spec.data.model_dump(mode="json"),
        "objective_name": spec.objective.name,
        "objective_label": spec.objective.label,
        "test_points": len(data.test_x),
        "train_points": len(data.train_x),
        "latent_shapes": {f"z{i + 1}": list(s) for i, s in enumerate(model.latent_shapes)},
        "data_shape": list(model.data_shape),
        "seed": seed,
    }


def _likelihood(run: LoadedRun, points: int, samples: int, seed: int) -> dict:
    """The importance-weighted log p(x) of a density model on at most ``points`` test points
    with ``samples`` importance samples each; a ``skipped`` note for the other objectives."""
    objective, test_x = run.objective, run.data.test_x
    if not objective.density:
        return {"skipped": f"{run.spec.objective.label} is not a density model of x"}
    rows = subset(len(test_x), points, seed)
    return metrics.importance_weighted_log_likelihood(
        objective, test_x[rows], samples=samples, device=run.device, seed=seed)


def _extractor(run: LoadedRun, features: str | dict, seed: int):
    """The feature extractor, or ``None`` for the default classifier on unlabelled data."""
    from hierot.evaluation.features import build_extractor, parse_features

    options = parse_features(features)
    data = run.data
    if options.name == "classifier" and (data.train_y is None or data.test_y is None):
        from hierot.evaluation.features import SHIPPED_FOR, manifest

        if SHIPPED_FOR.get(run.spec.data.name) not in manifest():
            return None
    return build_extractor(options, data=data, data_options=run.spec.data.model_dump(mode="json"),
                           seed=run.spec.seed, device=run.device)


def _probes(run: LoadedRun, probe_train: int, seed: int) -> dict:
    from hierot.evaluation._probe import chance_accuracy, linear_probe

    data = run.data
    rows = subset(len(data.train_x), probe_train, seed)
    labels, test_labels = data.train_y, data.test_y
    assert labels is not None and test_labels is not None  # evaluate() probes labelled data only
    train_codes = encode(run.objective, run.train_x[rows], device=run.device)
    test_codes = encode(run.objective, data.test_x, device=run.device)
    train_y = labels[rows]
    accuracy = {
        f"z{i + 1}": linear_probe(train_codes[i], train_y, test_codes[i], test_labels)
        for i in range(run.depth)
    }
    return {"accuracy": accuracy, "chance": chance_accuracy(train_y, test_labels),
            "train_points": len(rows), "test_points": len(data.test_x),
            "model": "logistic regression on standardised codes (means)"}


def _sample_quality(run: LoadedRun, samples: int, seed: int, samplers: Sequence, extractor,
                    resamples: int, per_layer: bool) -> dict:
    """The protocol's sample metrics (:mod:`hierot.evaluation.protocol`) and, when
    ``per_layer``, those of held-out data regenerated from every depth."""
    from hierot.evaluation._per_layer import per_layer_quality
    from hierot.evaluation.protocol import sample_quality

    quality, (ref, _) = sample_quality(run, samples, seed, samplers, extractor,
                                       resamples=resamples)
    if per_layer:
        quality["per_layer"] = per_layer_quality(
            run, ref, extractor, points=samples, seed=seed, resamples=resamples,
            reference_split=quality["protocol"]["reference"]["split"])
    return quality


# -- the terminal table ----------------------------------------------------------------------
def number(value, digits: int = 4) -> str:
    """``value`` for a table: ``digits`` significant digits, ``-`` when missing."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def per_layer_rows(result: dict) -> list[list[str]]:
    """Rows ``[layer, shape, rec l2sq, rec mse, probe accuracy, active / dim, KL]``, bottom
    first."""
    rec, active = result["reconstruction"], result["active_units"]
    probe = result["probe"].get("accuracy", {})
    kl = result.get("kl", {}).get("nats", {})  # absent from eval.json written before it existed
    shown = kl_note(result) is None  # a WAE's near-deterministic encoders: n/a, see kl_note
    return [
        [layer, "x".join(map(str, shape)), number(rec["l2sq"][layer]), number(rec["mse"][layer]),
         number(probe.get(layer), 3), f"{active['count'][layer]}/{active['dims'][layer]}",
         number(kl.get(layer)) if shown else "n/a"]
        for layer, shape in result["latent_shapes"].items()
    ]


PER_LAYER_HEADER = ["layer", "shape", "rec sq. error", "rec MSE/pixel", "probe acc", "active",
                    "KL (nats)"]


def per_layer_header(result: dict) -> list[str]:
    """:data:`PER_LAYER_HEADER`, its MSE per pixel (images) or per coordinate (vectors)."""
    vector = len(result.get("data_shape", [1, 1, 1])) == 1
    return [("rec MSE/coord" if vector else h) if h == "rec MSE/pixel" else h
            for h in PER_LAYER_HEADER]


def kl_note(result: dict) -> str | None:
    """Why the KL column reads ``n/a`` (an objective that is not a density model), or ``None``."""
    if result.get("kl", {}).get("density_model", True):
        return None
    return ("KL n/a: the objective is not a density model; its near-deterministic encoders read "
            "as a VAE's give KL terms that mean nothing (eval.json keeps them under kl)")


def likelihood_line(result: dict) -> str | None:
    """The importance-weighted log p(x) in words, or ``None`` when not computed."""
    lik = result.get("likelihood", {})
    if "log_px" not in lik:
        return None
    return (f"log p(x) >= {number(lik['log_px'])} nats (importance-weighted, K = {lik['samples']}, "
            f"{lik['points']} test points; ELBO {number(lik['elbo'])})")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  " + "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), *[line(r) for r in rows]]


def format_table(result: dict) -> str:
    """A readable summary of an ``eval.json`` result for the terminal."""
    objective = result["objective"]
    lines = [
        (f"evaluation of {result['run']} at step {result['step']} ({result['checkpoint']}), "
        f"{result['test_points']} test points, {result['device']}"),
        "",
        (f"objective ({result['objective_name']}) on the test split, "
        f"{objective['batches']} batch(es) of {objective['batch_size']}:"),
    ]
    terms = [[name, number(value), number(objective["weighted"][name])]
             for name, value in objective["unweighted"].items()]
    terms.append(["total", "", number(objective["total"])])
    lines += _table(["term", "unweighted", "weighted"], terms)
    lines += ["", ("per latent layer (reconstruction from encoding depth i, linear probe, "
                   "active units, KL term):")]
    lines += _table(per_layer_header(result), per_layer_rows(result))
    for extra in (kl_note(result), likelihood_line(result)):
        if extra:
            lines.append("  " + extra)
    if "chance" in result["probe"]:
        lines.append(f"  probe chance level {number(result['probe']['chance'], 3)}, fitted on "
                     f"{result['probe']['train_points']} training points")
    elif "skipped" in result["probe"]:
        lines.append(f"  linear probe skipped: {result['probe']['skipped']}")
    top = result["top_divergence"]
    lines += ["", (f"top divergence D(Q(z{top['layer']}), N(0, I)), {top['samples']} encoded test "
                  f"points vs as many prior samples (floor: prior vs prior):")]
    for name in metrics.DIVERGENCES:
        if name in top:
            floor = number(top["floor"].get(name))
            lines.append(f"  {name:<9}{number(top[name]):>12}   floor {floor}")
    quality = result["sample_quality"]
    lines.append("")
    if "fcd" in quality:
        from hierot.evaluation.sample_quality import HEADER, rows

        protocol = quality.get("protocol", {})
        ref = protocol.get("reference", {"split": "test", "points": quality["samples"]})
        c = quality["classifier"]
        lines += [
            (f"sample quality ({protocol.get('version', 'hierot-eval/1')}): {quality['metric']} = "
             f"{number(quality['fcd'])}, {quality['samples']} samples against "
             f"{ref['points']} {ref['split']} points"),
            (f"  features: {c.get('name', 'classifier')} ({c.get('source', 'trained-here')}"
             f"{', sha256 ' + c['sha256'][:12] if c.get('sha256') else ''}); 95 % intervals in "
             "eval.json and report.md"),
            ("fidelity (precision, density) and coverage (recall, coverage, class histogram) "
             "per sampler of z_N and decoding path:"),
            *_table(HEADER, rows(quality, number)),
        ]
        if "per_layer" in quality:
            from hierot.evaluation._per_layer import table

            header, body = table(quality["per_layer"], number)
            lines += [(f"held-out data regenerated from each depth "
                       f"({quality['per_layer']['points']} points):"),
                      *_table(header, body)]
    else:
        lines.append(f"sample quality: skipped ({quality['skipped']})")
    lines += ["", f"wall time {result['wall_time_s']:.1f} s"]
    return "\n".join(lines)

