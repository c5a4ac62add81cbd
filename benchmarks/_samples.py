"""Sample fidelity and coverage in the training benchmarks: their Markdown table and the
per-class sample histogram figure.

Every run is evaluated with the samplers :data:`benchmarks._runs.SAMPLERS` of the top latent,
each along both decoding paths (``ancestral``: each layer's noise, the model; ``mean``: the
decoders' means), kept by :func:`benchmarks._runs.summarise_samples` and aggregated over seeds by
:func:`benchmarks._runs.aggregate_samples`; see :mod:`hierot.evaluation.samplers` and
:mod:`hierot.evaluation.sample_quality`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import _common as common
from benchmarks._runs import SAMPLE_METRICS, fmt

COLUMNS = ["FCD", "precision", "recall", "density", "coverage", "class TV", "rare classes"]


def table(arms: dict[str, dict]) -> list[str]:
    """Markdown rows: one per arm and sampler / path (mean ± sd over seeds)."""
    lines = ["| run | sampler / path | " + " | ".join(COLUMNS) + " |",
             "| --- | --- |" + " ---: |" * len(COLUMNS)]
    for arm, samples in arms.items():
        for key, stats in samples.items():
            if key == "reference":
                continue
            lines.append(f"| {arm} | {key} | "
                         + " | ".join(fmt(stats[m]) for m in SAMPLE_METRICS) + " |")
    some = next((s for s in arms.values() if s), None)
    if some:
        ref = some["reference"]
        lines += ["", ("Reference, training data against test data (same size): "
                       + ", ".join(f"{c} {fmt(ref[m])}" for c, m in zip(COLUMNS, SAMPLE_METRICS))
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
    from hierot.evaluation.plotting import new_figure, save

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
