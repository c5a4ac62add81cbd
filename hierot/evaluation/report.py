"""``RUN/report.md``: a one-page report of a run.

The resolved spec in brief, the training summary, the metrics of ``eval.json`` (when
``hierot eval`` has been run) and the figures of ``RUN/figures`` (when ``hierot plot`` has been
run), linked by relative paths so the directory can be moved or published as it is. Written by
``hierot plot`` after the figures, and by ``hierot report`` on its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hierot.evaluation.evaluator import (
    kl_note,
    likelihood_line,
    number,
    per_layer_header,
    per_layer_rows,
)
from hierot.evaluation.figures import CAPTIONS
from hierot.run import Run, atomic_write_text, layout, load_run_spec

REPORT_FILE = layout.REPORT


def _component(options: Any) -> str:
    """``name(option=value, ...)`` with only the options that differ from their defaults."""
    fields = options.model_dump(mode="json", exclude_defaults=True)
    name = fields.pop("name", "?")
    inner = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"`{name}({inner})`" if inner else f"`{name}`"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def spec_section(spec) -> list[str]:
    weights, match = spec.resolved_weights()
    rows = [
        [f"z{i + 1}", "x".join(map(str, layer.latent_shape)), _component(layer.encoder),
         layer.encoder_head, _component(layer.decoder), layer.decoder_head,
         _component(layer.cost), "-" if weights is None else f"{weights[i]:.3g}"]
        for i, layer in enumerate(spec.layers)
    ]
    objective = f"{spec.objective.label}: {_component(spec.objective)}"
    divergence = (f"{_component(spec.divergence)}, weight {match:.3g}" if match is not None
                  else f"{_component(spec.divergence)}, not used by the objective")
    train = spec.train
    budget = f"{train.steps} steps" if train.steps is not None else f"{train.epochs} epochs"
    lines = [
        "## Spec", "",
        *_table(["", ""], [
            ["data", _component(spec.data)],
            ["objective", objective],
            ["top divergence", divergence],
            ["penalties", ", ".join(_component(p) for p in spec.penalties) or "none"],
            ["optimiser", f"`{spec.optimizer.name}`, lr {spec.optimizer.lr:g}"],
            ["training", f"{budget}, batch {train.batch_size}, seed {spec.seed}"],
        ]),
        "",
        *_table(["layer", "shape", "encoder", "q head", "decoder", "p head",
                 "cost on the layer below", "weight of its term"], rows),
        "",
        "Options at their defaults are omitted; `spec.yaml` holds them all.",
        "",
    ]
    return lines


def metrics_section(result: dict | None) -> list[str]:
    if result is None:
        return ["## Metrics", "", "No `eval.json` yet: run `hierot eval RUN_DIR`.", ""]
    objective, top = result["objective"], result["top_divergence"]
    quality = result["sample_quality"]
    lines = [
        "## Metrics", "",
        (f"Held-out split ({result['test_points']} points), checkpoint `{result['checkpoint']}` "
        f"(step {result['step']}), evaluated in {result['wall_time_s']:.1f} s on "
        f"{result['device']}."),
        "",
        ("Objective terms on the test split "
        f"({objective['batches']} batch(es) of {objective['batch_size']}):"),
        "",
        *_table(["term", "unweighted", "weighted"],
                [[f"`{k}`", number(v), number(objective["weighted"][k])]
                 for k, v in objective["unweighted"].items()]
                + [["total", "", number(objective["total"])]]),
        "",
        ("Per latent layer: squared error of the reconstruction from encoding depth i (summed over "
        "the pixels, and per pixel), linear-probe accuracy of the labels, active units, KL term "
        "of the hierarchical ELBO under the objective's posterior:"),
        "",
        *_table(per_layer_header(result), per_layer_rows(result)),
        "",
    ]
    for extra in (kl_note(result), likelihood_line(result)):
        if extra:
            lines += [extra + ".", ""]
    rows = []
    if "fcd" in quality:
        c = quality["classifier"]
        protocol = quality.get("protocol", {})
        ref = protocol.get("reference", {"split": "test", "points": quality["samples"]})
        floor = quality.get("floor_fcd", quality.get("floor_train_vs_test"))
        where = f", sha256 `{c['sha256'][:12]}`" if c.get("sha256") else ""
        source = (f"{c.get('source', 'trained-here')}{where}, protocol "
                  f"{protocol.get('version', 'hierot-eval/1')}")
        rows += [
            [quality["metric"], number(quality["fcd"]),
             f"{quality['samples']} samples vs {ref['points']} {ref['split']} points"],
            ["FD floor (held-out data vs the reference)", number(floor), "same features"],
            ["features", c.get("name", "classifier"), source],
        ]
        if "test_accuracy" in c:
            rows.append(["feature classifier test accuracy", number(c["test_accuracy"], 3), ""])
    for name in ("mmd", "sinkhorn"):
        if name in top:
            rows.append([(f"{name.upper() if name == 'mmd' else 'Sinkhorn'} "
                         f"D(Q(z{top['layer']}), N(0, I))"), number(top[name]),
                         (f"{top['samples']} points; floor (prior vs prior) "
                         f"{number(top['floor'].get(name))}")])
    if "chance" in result["probe"]:
        rows.append(["probe chance level", number(result["probe"]["chance"], 3),
                     f"{result['probe']['train_points']} training points"])
    if rows:
        lines += [*_table(["metric", "value", "note"], rows), ""]
    if "samplers" in quality:
        lines += sample_quality_section(quality)
    return lines


def sample_quality_section(quality: dict) -> list[str]:
    """Fidelity and coverage of every sampler and decoding path, and of held-out data
    regenerated from every depth (``eval.json``), with their 95 % intervals."""
    from hierot.evaluation.sample_quality import HEADER, rows

    protocol = quality.get("protocol", {})
    ref = protocol.get("reference", {"split": "test", "points": quality["samples"]})
    intervals = protocol.get("intervals", {})
    lines = [
        (f"Samples ({quality['samples']} per sampler and path) against {ref['points']} "
         f"{ref['split']} points in the features of `{quality['classifier'].get('name')}`: FD, "
         "KID, precision and recall (k = 3, Kynkäänniemi et al. 2019), density and coverage "
         "(k = 5, Naeem et al. 2020), the total-variation distance between the histograms of "
         "predicted classes of samples and reference data, and the classes sampled less than a "
         "tenth as often as in the reference. `ancestral` draws each layer's noise (the model); "
         "`mean` decodes through the decoders' means. The held-out split against the reference "
         "is the floor. Brackets: 95 % bootstrap intervals "
         f"({intervals.get('resamples', '-')} resamples of the samples; `docs/evaluation.md`)."),
        "",
        *_table(HEADER, rows(quality, number, intervals=True)),
        "",
    ]
    if "per_layer" in quality:
        from hierot.evaluation._per_layer import table

        block = quality["per_layer"]
        header, body = table(block, number)
        lines += [
            (f"Held-out data ({block['points']} test points) encoded to each depth and "
             "regenerated by the generative model from there (the quantitative Figure 3b): "
             "`ancestral` with each layer's noise, `mean` through the decoders' means."
             + (" The inputs are part of the reference set: shallow depths look optimistic."
                if block.get("inputs_in_reference") else "")),
            "",
            *_table(header, body),
            "",
        ]
    return lines


def write_report(path: str | Path | Run) -> Path:
    """Write ``RUN/report.md`` from what the run directory holds; returns its path."""
    run_dir = path if isinstance(path, Run) else Run(path)
    run_dir.require()
    spec = load_run_spec(run_dir.path)
    summary = _read_json(run_dir.summary_file)
    lines = [f"# Run `{run_dir.path.name}`", ""]
    if spec.description:
        lines += [spec.description, ""]
    if summary:
        lines += [(f"Trained {summary['steps']} steps in {summary['wall_time_s']:.1f} s; "
                  f"last checkpoint `{summary['checkpoint']}`."), ""]
    lines += spec_section(spec)
    lines += metrics_section(_read_json(run_dir.eval_file))
    lines += ["## Figures", ""]
    present = [(name, caption) for name, caption in CAPTIONS.items()
               if (run_dir.figures_dir / name).is_file()]
    if not present:
        lines += ["No figures yet: run `hierot plot RUN_DIR`.", ""]
    for name, caption in present:
        lines += [f"![{caption}](figures/{name})", "", f"*{caption}*", ""]
    lines += [f"<sub>Written by `hierot` on {time.strftime('%Y-%m-%d %H:%M')}.</sub>", ""]
    out = run_dir.report_file
    atomic_write_text(out, "\n".join(lines))
    return out
