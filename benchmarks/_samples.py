"""Sample fidelity and coverage in the training benchmarks: what they keep of ``eval.json``, how
they aggregate it over seeds, their Markdown table and the per-class sample histogram figure.

Every run is evaluated with the samplers :data:`SAMPLERS` of the top latent, each along both
decoding paths (``ancestral``: each layer's noise, the model; ``mean``: the decoders' means); see
:mod:`hierot.evaluation.samplers` and :mod:`hierot.evaluation.sample_quality`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import _common as common

SAMPLERS = ("prior", "gmm")
"""The model's prior, and a 10-component full-covariance Gaussian mixture fitted post hoc."""
METRICS = ("fcd", "precision", "recall", "density", "coverage", "class_tv", "rare")
COLUMNS = ["FCD", "precision", "recall", "density", "coverage", "class TV", "rare classes"]


def summarise(quality: dict) -> dict:
    """``{"sampler / path": {metric: value, "hist": [...]}}`` of one ``sample_quality`` block,
    with the training data against the test data under ``"reference"``."""
    def one(block: dict) -> dict:
        classes = block["class_coverage"]
        return {"fcd": block["fcd"], "precision": block["precision"], "recall": block["recall"],
                "density": block["density"], "coverage": block["coverage"],
                "class_tv": classes["total_variation"], "rare": classes["rare"],
                "rare_classes": classes["rare_classes"], "hist": classes["samples"]}

    if "samplers" not in quality:
        return {}
    out = {"reference": one(quality["reference_train_vs_test"])}
    out["reference"]["test_hist"] = quality["reference_train_vs_test"]["class_coverage"]["test"]
    for sampler, paths in quality["samplers"].items():
        for path, block in paths.items():
            out[f"{sampler} / {path}"] = one(block)
    return out


def aggregate(summaries: list[dict]) -> dict:
    """Mean ± sd over seeds of every metric of every sampler / path; mean class histograms."""
    summaries = [s for s in summaries if s]
    if not summaries:
        return {}
    out = {}
    for key in summaries[0]:
        out[key] = {m: common.mean_std([s[key][m] for s in summaries]) for m in METRICS}
        hists = [s[key]["hist"] for s in summaries]
        out[key]["hist"] = [sum(h[c] for h in hists) / len(hists) for c in range(len(hists[0]))]
    out["reference"]["test_hist"] = summaries[0]["reference"]["test_hist"]
    return out


def table(arms: dict[str, dict]) -> list[str]:
    """Markdown rows: one per arm and sampler / path (mean ± sd over seeds)."""
    lines = ["| run | sampler / path | " + " | ".join(COLUMNS) + " |",
             "| --- | --- |" + " ---: |" * len(COLUMNS)]
    for arm, samples in arms.items():
        for key, stats in samples.items():
            if key == "reference":
                continue
            lines.append(f"| {arm} | {key} | "
                         + " | ".join(common.fmt(stats[m]) for m in METRICS) + " |")
    some = next((s for s in arms.values() if s), None)
    if some:
        ref = some["reference"]
        lines += ["", ("Reference, training data against test data (same size): "
                       + ", ".join(f"{c} {common.fmt(ref[m])}" for c, m in zip(COLUMNS, METRICS))
                       + ".")]
    return lines


NOTE = ("Fidelity: precision (k = 3) and density (k = 5); coverage: recall (k = 3), coverage "
        "(k = 5) and the classes, in the features of the FCD classifier: class TV is the "
        "total-variation distance between the histograms of predicted classes of samples and "
        "test data, rare classes the number sampled less than a tenth as often as in the test "
        "set. `ancestral` decodes with each layer's noise (the model), `mean` through the "
        "decoders' means; `gmm` replaces the prior by a 10-component Gaussian mixture fitted to "
        "the encoded training set.")


def histogram_figure(arms: dict[str, dict], path: Path, keys=("prior / ancestral",
                     "prior / mean", "gmm / ancestral")) -> Path | None:
    """Per-class frequency of the samples (mean over seeds) of each arm, beside the test set's."""
    from hierot.evaluation._draw import new_figure, save

    arms = {a: s for a, s in arms.items() if s}
    if not arms:
        return None
    keys = [k for k in keys if all(k in s for s in arms.values())]
    figure = new_figure(3.6 * len(keys), 3.0)
    figure.set_dpi(90)
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    test = next(iter(arms.values()))["reference"]["test_hist"]
    classes = range(len(test))
    width = 0.8 / (len(arms) + 1)
    for ax, key in zip(axes, keys):
        ax.bar([c - 0.4 + width / 2 for c in classes], test, width, color="k", label="test set")
        for i, (arm, samples) in enumerate(arms.items(), start=1):
            ax.bar([c - 0.4 + width * (i + 0.5) for c in classes], samples[key]["hist"], width,
                   label=arm)
        ax.set_xticks(list(classes))
        ax.set_title(f"predicted class of samples: {key}", fontsize="small")
        ax.set_xlabel("class")
    axes[0].set_ylabel("frequency (mean over seeds)")
    axes[0].legend(fontsize="x-small")
    return common.small_png(save(figure, path), colours=64)
