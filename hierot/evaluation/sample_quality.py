r"""Fidelity and coverage of generated samples, measured apart, in a classifier's feature space.

A single distance between Gaussian fits (the Fréchet distance, :mod:`hierot.evaluation._frechet`)
mixes two failures: samples that look like no data point (poor *fidelity*) and data that no sample
looks like (poor *coverage*, e.g. a digit the model never draws). This module measures them apart,
in the same features (the cached classifier of :mod:`hierot.evaluation.classifier`).

k-nearest-neighbour manifolds
-----------------------------
With real features :math:`\{x_i\}_{i=1}^N`, generated features :math:`\{y_j\}_{j=1}^M` and
:math:`\mathrm{NND}_k(x_i)` the distance from :math:`x_i` to its k-th nearest neighbour among the
*other* real points, the ball :math:`B(x_i, \mathrm{NND}_k(x_i))` around every real point
estimates the support of the data (likewise for the samples).

* Improved **precision and recall** (Kynkäänniemi et al., *Improved Precision and Recall Metric
  for Assessing Generative Models*, NeurIPS 2019), :math:`k = 3`:

  .. math::

      \mathrm{precision} = \frac1M \sum_j 1\big[\exists i: y_j \in B(x_i, \mathrm{NND}_k(x_i))\big],
      \qquad
      \mathrm{recall} = \frac1N \sum_i 1\big[\exists j: x_i \in B(y_j, \mathrm{NND}_k(y_j))\big].

  Precision is the share of samples inside the data's manifold (fidelity), recall the share of
  data inside the samples' manifold (coverage).

* **Density and coverage** (Naeem et al., *Reliable Fidelity and Diversity Metrics for
  Generative Models*, ICML 2020), :math:`k = 5`, both built on the real balls only (robust to
  outlying samples, which inflate the sample balls behind recall):

  .. math::

      \mathrm{density} = \frac{1}{kM} \sum_j \sum_i 1\big[y_j \in B(x_i, \mathrm{NND}_k(x_i))\big],
      \qquad
      \mathrm{coverage} = \frac1N \sum_i 1\big[\exists j: y_j \in B(x_i, \mathrm{NND}_k(x_i))\big].

  Density is about 1 for samples distributed like the data (it is not bounded by 1: samples
  crowding dense regions push it above); coverage is the share of real points with a sample
  among their k nearest neighbours.

Class coverage
--------------
The classifier's predicted classes of the samples form a histogram :math:`q` that is compared with
the histogram :math:`p` of its predictions on the test set (the same lens on both sides, so its
own errors largely cancel): the total-variation distance
:math:`\mathrm{TV}(p, q) = \tfrac12 \sum_c |p_c - q_c| \in [0, 1]`, the Kullback-Leibler
divergence :math:`\mathrm{KL}(p \,\|\, q)` with one pseudo-count added to every class of both
histograms (finite when a class is missing), and the classes the samples *nearly never* produce:
:math:`q_c < 0.1\, p_c` (``rare_fraction``).

All k-NN searches run in chunks of ``chunk`` rows through :func:`torch.cdist`, so memory grows as
``chunk x N``, never ``M x N``: 1,024 x 5,000 float64 distances (40 MB) at a time; all four
metrics of 5,000 against 5,000 128-d features take about 4.5 s on one CPU thread.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

PRECISION_RECALL_K = 3
"""Kynkäänniemi et al.'s default neighbourhood size."""
DENSITY_COVERAGE_K = 5
"""Naeem et al.'s default neighbourhood size."""
RARE_FRACTION = 0.1
"""A class is *nearly never* sampled when its sample frequency is below this share of its test
frequency."""
CHUNK = 1024
ROUND_OFF = 1e-9
"""Relative allowance on the radii: :func:`torch.cdist` (matrix-product form, float64) gives
d(a, b) and d(b, a) that may differ in the last bits, which must not push a point that *is* a
ball's k-th neighbour out of the ball."""


def _as_tensor(features: Tensor | np.ndarray) -> Tensor:
    f = torch.as_tensor(features).detach().cpu().to(torch.float64)
    if f.ndim != 2:
        raise ValueError(f"need (n, d) features, got shape {tuple(f.shape)}")
    return f


def knn_radii(features: Tensor | np.ndarray, k: int, *, chunk: int = CHUNK) -> Tensor:
    r"""Distance of every row to its ``k``-th nearest neighbour among the *other* rows.

    Parameters
    ----------
    features:
        ``(n, d)`` features, ``n > k``.
    k:
        Neighbourhood size (1 is the nearest other point).
    chunk:
        Rows per :func:`torch.cdist` call.

    Returns
    -------
    Tensor
        ``(n,)`` float64 radii :math:`\mathrm{NND}_k`.
    """
    f = _as_tensor(features)
    if not 1 <= k < len(f):
        raise ValueError(f"k must be in 1..{len(f) - 1} for {len(f)} points, got {k}")
    radii = []
    for start in range(0, len(f), chunk):
        d = torch.cdist(f[start:start + chunk], f)
        # the k+1 smallest include the point itself at distance 0 (the (k+1)-th skips it);
        # topk, several times faster than kthvalue on wide tiles
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _ball_counts(points: Tensor, centres: Tensor, radii: Tensor,
                 chunk: int) -> tuple[Tensor, Tensor]:
    """For every point, how many balls contain it; for every ball, whether any point is in it."""
    radii = radii * (1 + ROUND_OFF)
    inside = torch.zeros(len(points), dtype=torch.long)
    hit = torch.zeros(len(centres), dtype=torch.bool)
    for start in range(0, len(points), chunk):
        within = torch.cdist(points[start:start + chunk], centres) <= radii  # (chunk, centres)
        inside[start:start + chunk] = within.sum(1)
        hit |= within.any(0)
    return inside, hit


def precision_recall(
    real: Tensor | np.ndarray, fake: Tensor | np.ndarray, k: int = PRECISION_RECALL_K, *,
    chunk: int = CHUNK,
) -> dict[str, float]:
    """Improved precision and recall of Kynkäänniemi et al. (2019) (module docstring).

    Parameters
    ----------
    real, fake:
        ``(N, d)`` data features and ``(M, d)`` sample features.
    k:
        Neighbourhood size of the manifold estimates (default 3, the paper's).

    Returns
    -------
    dict
        ``precision`` and ``recall``, both in [0, 1].
    """
    r, f = _as_tensor(real), _as_tensor(fake)
    in_real, _ = _ball_counts(f, r, knn_radii(r, k, chunk=chunk), chunk)
    in_fake, _ = _ball_counts(r, f, knn_radii(f, k, chunk=chunk), chunk)
    return {"precision": float((in_real > 0).double().mean()),
            "recall": float((in_fake > 0).double().mean())}


def density_coverage(
    real: Tensor | np.ndarray, fake: Tensor | np.ndarray, k: int = DENSITY_COVERAGE_K, *,
    chunk: int = CHUNK,
) -> dict[str, float]:
    """Density and coverage of Naeem et al. (2020) (module docstring).

    Parameters
    ----------
    real, fake:
        ``(N, d)`` data features and ``(M, d)`` sample features.
    k:
        Neighbourhood size of the real balls (default 5, the paper's).

    Returns
    -------
    dict
        ``density`` (>= 0, about 1 for samples like the data) and ``coverage`` in [0, 1].
    """
    r, f = _as_tensor(real), _as_tensor(fake)
    inside, hit = _ball_counts(f, r, knn_radii(r, k, chunk=chunk), chunk)
    return {"density": float(inside.double().sum() / (k * len(f))),
            "coverage": float(hit.double().mean())}


def class_coverage(
    sample_classes: Tensor | np.ndarray, test_classes: Tensor | np.ndarray, classes: int, *,
    rare_fraction: float = RARE_FRACTION,
) -> dict:
    r"""Histogram of the samples' classes against the test set's (module docstring).

    Parameters
    ----------
    sample_classes, test_classes:
        Predicted class of every sample and of every test point, integers in ``0..classes-1``.
    classes:
        The number of classes.
    rare_fraction:
        A class is nearly never sampled when :math:`q_c < \text{rare\_fraction} \cdot p_c`.

    Returns
    -------
    dict
        ``samples`` and ``test`` (frequency per class), ``total_variation``, ``kl_test_samples``
        (:math:`\mathrm{KL}(p\|q)`, one pseudo-count per class), ``rare_classes`` (the list) and
        ``rare`` (their number), ``rare_fraction``.
    """
    def histogram(labels) -> np.ndarray:
        labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).ravel()
        return np.bincount(labels, minlength=classes).astype(np.float64)

    q_counts, p_counts = histogram(sample_classes), histogram(test_classes)
    q, p = q_counts / q_counts.sum(), p_counts / p_counts.sum()
    q_smooth = (q_counts + 1) / (q_counts.sum() + classes)
    p_smooth = (p_counts + 1) / (p_counts.sum() + classes)
    rare = [c for c in range(classes) if p[c] > 0 and q[c] < rare_fraction * p[c]]
    return {
        "samples": q.round(6).tolist(), "test": p.round(6).tolist(),
        "total_variation": float(0.5 * np.abs(p - q).sum()),
        "kl_test_samples": float((p_smooth * np.log(p_smooth / q_smooth)).sum()),
        "rare": len(rare), "rare_classes": rare, "rare_fraction": rare_fraction,
    }


def fidelity_coverage(real: Tensor | np.ndarray, fake: Tensor | np.ndarray, *,
                      chunk: int = CHUNK) -> dict[str, float]:
    """Precision, recall (k = 3), density and coverage (k = 5) of ``fake`` against ``real``."""
    return {**precision_recall(real, fake, chunk=chunk),
            **density_coverage(real, fake, chunk=chunk)}


HEADER = ["sampler / path", "FD", "KID", "precision", "recall", "density", "coverage",
          "class TV", "rare classes"]
"""Columns of :func:`rows`."""
ORDER = ("fcd", "kid", "precision", "recall", "density", "coverage")


def _row(name: str, block: dict, digits, intervals: bool) -> list[str]:
    def cell(key: str) -> str:
        value = digits(block[key]) if key in ("fcd", "kid") else digits(block[key], 3)
        lo_hi = block.get("intervals", {}).get(key) if intervals else None
        return f"{value} [{digits(lo_hi[0], 3)}, {digits(lo_hi[1], 3)}]" if lo_hi else value

    classes = block.get("class_coverage")
    if classes is None:
        tv, rare = "-", "-"
    else:
        tv = digits(classes["total_variation"], 3)
        rare = f"{classes['rare']} {classes['rare_classes']}" if classes["rare"] else "0"
    return [name, *(cell(k) if k in block else "-" for k in ORDER), tv, rare]


def rows(quality: dict, digits, *, intervals: bool = False) -> list[list[str]]:
    """Table rows (:data:`HEADER`) of an ``eval.json`` ``sample_quality`` block: the held-out
    split against the reference first (the floor), then every sampler along every decoding
    path; ``value [lo, hi]`` with the 95 % intervals when ``intervals``."""
    floor = quality.get("floor") or quality["reference_train_vs_test"]  # before hierot-eval/2
    split = quality.get("protocol", {}).get("floor", {}).get("split", "train")
    name = {"train": "training data (floor)", "test": "test data (floor)"}[split]
    out = [_row(name, floor, digits, intervals)]
    for sampler, paths in quality.get("samplers", {}).items():
        out += [_row(f"{sampler} / {path}", block, digits, intervals)
                for path, block in paths.items()]
    return out


__all__ = ["HEADER", "class_coverage", "density_coverage", "fidelity_coverage", "knn_radii",
           "precision_recall"]
