r"""Fidelity and coverage of data regenerated from every depth: the quantitative Figure 3b.

The paper's Figure 3b (Gaujac et al., *Learning disentangled representations with the
Wasserstein Autoencoder*, §4) shows held-out digits encoded to :math:`z_k` and decoded back: the
deeper the code, the more of the digit the generative model redraws. This module measures it.
For each depth :math:`k = 1..N`, held-out points :math:`x` are encoded to the means
:math:`\bar z_k = \mathbb E[z_k | x]` (the run's own posterior) and regenerated along two paths:

``ancestral``
    :math:`z_{i-1} \sim p_{\theta_i}(z_{i-1} | z_i)` for :math:`i = k..2`, then the mean of
    :math:`p(x | z_1)`: the model's own noise below depth k;
``mean``
    :math:`z_{i-1} = \mu_{\theta_i}(z_i)` at every layer: deterministic given :math:`\bar z_k`.

The regenerated set is measured against the protocol's reference set
(:mod:`hierot.evaluation.protocol`) like any samples: Fréchet distance, precision and recall,
density and coverage, each with its bootstrap interval (:mod:`hierot.evaluation._bootstrap`).
A row ``data`` measures the held-out points themselves (the floor). Fidelity (precision,
density) staying high while coverage (recall, coverage) falls with k says the upper layers
forget which data they came from but still draw plausible data; both falling says they draw
implausible data.

When the reference set is the test split itself (a test split of at least N points), the
held-out points are drawn from it too, and the reconstructions from shallow depths sit next to
their own originals in the reference: ``inputs_in_reference`` is then true and shallow-depth
precision is optimistic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hierot._utils import seeded
from hierot.evaluation import _bootstrap as bootstrap
from hierot.evaluation.trained import chunks, encode, subset

PATHS = ("ancestral", "mean")
METRICS = ("fcd", "precision", "recall", "density", "coverage")


@torch.no_grad()
def regenerate(model, z: Tensor, depth: int, path: str, *, device="cpu") -> Tensor:
    """x from codes ``z`` of layer ``depth`` along ``path`` (module docstring), batched, CPU."""
    out = []
    for part in chunks(len(z)):
        h = z[part].to(device)
        for layer in range(depth, 0, -1):
            h = model.decoders[layer - 1](h).sample_or_mean(path == "ancestral" and layer > 1)
        out.append(h.cpu())
    return torch.cat(out)


def _row(ref: bootstrap.Reference, features: Tensor, resamples: int, seed: int) -> dict:
    measured = bootstrap.measure(ref, features, resamples=resamples, seed=seed)
    measured["fcd"] = measured.pop("fd")
    measured["intervals"]["fcd"] = measured["intervals"].pop("fd", None)
    return measured


def per_layer_quality(run, ref: bootstrap.Reference, extractor, *, points: int, seed: int,
                      reference_split: str, resamples: int = bootstrap.RESAMPLES) -> dict:
    """Sample metrics of held-out data regenerated from every depth (module docstring).

    Returns
    -------
    dict
        ``points``, ``inputs`` (the split), ``inputs_in_reference``, ``data`` (the held-out
        points' own metrics) and ``layers``: ``{"z1": {"ancestral": {...}, "mean": {...}}, ...}``,
        each block ``fcd``, ``precision``, ``recall``, ``density``, ``coverage`` and
        ``intervals``.
    """
    x = run.data.test_x[subset(len(run.data.test_x), points, seed)]
    codes = encode(run.objective, x, device=run.device)
    layers: dict[str, dict[str, Any]] = {}
    for depth in range(1, run.depth + 1):
        layers[f"z{depth}"] = {}
        for path in PATHS:
            if depth == 1 and path == "mean":  # no noise below z1: the same points
                layers["z1"]["mean"] = layers["z1"]["ancestral"]
                continue
            with seeded(seed):
                regenerated = regenerate(run.model, codes[depth - 1], depth, path,
                                         device=run.device)
            layers[f"z{depth}"][path] = _row(ref, extractor.features(regenerated), resamples,
                                             seed)
    return {"points": len(x), "inputs": "test", "inputs_in_reference": reference_split == "test",
            "data": _row(ref, extractor.features(x), resamples, seed), "layers": layers}


def table(block: dict, digits) -> tuple[list[str], list[list[str]]]:
    """Header and rows (``value [lo, hi]``) of a ``per_layer_quality`` block, deepest first."""
    header = ["regenerated from", "path", "FD", "precision", "recall", "density", "coverage"]

    def cells(b: dict) -> list[str]:
        out = []
        for m in METRICS:
            lo_hi = b["intervals"].get(m)
            ci = f" [{digits(lo_hi[0], 3)}, {digits(lo_hi[1], 3)}]" if lo_hi else ""
            out.append(f"{digits(b[m], 3)}{ci}")
        return out

    rows = [[layer, path, *cells(b)] for layer, paths in reversed(block["layers"].items())
            for path, b in paths.items()]
    rows.append(["data (held-out)", "-", *cells(block["data"])])
    return header, rows


def figure(block: dict, path):
    """``per_layer_quality.png``: every metric against the depth regenerated from, one line per
    path with its 95 % intervals as error bars, the held-out data's value dashed."""
    from hierot.evaluation.plotting import new_figure, save

    layers = list(block["layers"])
    depths = list(range(1, len(layers) + 1))
    fig = new_figure(3.0 * len(METRICS), 3.2)
    axes = fig.subplots(1, len(METRICS))
    names = {"fcd": "FD (lower is better)", "precision": "precision (fidelity)",
             "recall": "recall (coverage)", "density": "density (fidelity)",
             "coverage": "coverage"}
    for ax, metric in zip(axes, METRICS):
        for path_name, marker in zip(PATHS, ("o", "s")):
            rows = [block["layers"][layer][path_name] for layer in layers]
            values = [r[metric] for r in rows]
            low = [v - (r["intervals"].get(metric) or [v, v])[0] for v, r in zip(values, rows)]
            high = [(r["intervals"].get(metric) or [v, v])[1] - v for v, r in zip(values, rows)]
            ax.errorbar(depths, values, yerr=[low, high], marker=marker, capsize=3,
                        label=path_name)
        ax.axhline(block["data"][metric], color="0.5", linestyle="--", label="held-out data")
        ax.set_xticks(depths, layers)
        ax.set_xlabel("regenerated from")
        ax.set_title(names[metric], fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Held-out data ({block['points']} points) regenerated from each depth "
                 "(quantitative Figure 3b)", fontsize=10)
    return save(fig, path)


__all__ = ["figure", "per_layer_quality", "regenerate", "table"]
