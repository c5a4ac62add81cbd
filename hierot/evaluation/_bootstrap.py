r"""Sample metrics against a fixed reference set, each with a bootstrap confidence interval.

The metrics are those of :mod:`hierot.evaluation.sample_quality` (precision and recall with
:math:`k = 3`, density and coverage with :math:`k = 5`) and the Fréchet distance of
:mod:`hierot.evaluation._frechet`, computed so that 10,000 samples against 10,000 reference
points never hold a 10,000 x 10,000 matrix: every distance is computed in tiles of
``chunk`` generated rows (:data:`CHUNK` x N float64 at a time).

Intervals (percentile bootstrap, Efron & Tibshirani 1993, ch. 13)
------------------------------------------------------------------
The reference set is fixed by the protocol and recorded, so the intervals are *conditional on
it*: they resample the generated samples only, :data:`RESAMPLES` times (seeded), and report the
2.5 % and 97.5 % quantiles (:data:`CONFIDENCE`) moved by the bootstrap's bias (the resamples'
mean less the estimate; Efron & Tibshirani's bias correction, ch. 10). The move matters for the
metrics that are not plain means: a resample holds only about 63 % distinct samples, which
lowers recall and coverage, and adds noise to the covariance, which raises the Fréchet
distance. The intervals measure how much a number would move with another draw of the same
number of samples from the same model: they are intervals for the expected value *at this
sample count* (the Fréchet distance's own upward bias at finite N is not removed, so compare
distances computed with equal N only).

* Precision and density are means over samples of per-sample quantities (inside the data's
  manifold; the number of real balls holding the sample), so a resample is a weighted mean.
* Recall and coverage are means over reference points of "some sample is near": for every
  reference point the indices of the samples near it are kept (the first :data:`NEAR_KEPT` of
  them: a point with more stays covered unless all of those are left out of a resample, which
  happens with probability about :math:`e^{-32}`), and a resample covers the point when it draws
  one of them. The balls' radii are those of the full sets, which makes recall's interval
  conservative: about twice as wide as the spread of recall over independent sample sets in
  the synthetic check of ``tests/evaluation/test_protocol.py`` (the other metrics' match that
  spread).
* The Fréchet distance is resampled by groups: the samples are cut into :data:`FD_GROUPS`
  groups whose sums and sums of outer products are kept, and a resample draws groups with
  replacement (a bootstrap of i.i.d. blocks; exact in the mean and covariance it resamples up to
  the group size). Features wider than :data:`FD_MAX_DIM` (Inception's 2,048) skip the FD
  interval (the group moments would take gigabytes); the point value is still exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from hierot.evaluation._frechet import _sqrt_psd
from hierot.evaluation.sample_quality import (
    CHUNK,
    DENSITY_COVERAGE_K,
    PRECISION_RECALL_K,
    ROUND_OFF,
    knn_radii,
)

RESAMPLES = 200
"""Bootstrap resamples per interval."""
CONFIDENCE = 0.95
NEAR_KEPT = 32
"""Samples kept per reference point for the recall/coverage resamples (module docstring)."""
FD_GROUPS = 100
FD_MAX_DIM = 512
_BATCH = 25


def _f64(features) -> Tensor:
    f = torch.as_tensor(features).detach().cpu().to(torch.float64)
    if f.ndim != 2:
        raise ValueError(f"need (n, d) features, got shape {tuple(f.shape)}")
    return f


def interval(values: Tensor | np.ndarray | Sequence[float], estimate: float | None = None,
             confidence: float = CONFIDENCE) -> list[float]:
    """The percentile interval ``[lo, hi]`` of bootstrap ``values``, moved by the bootstrap's
    bias (their mean less ``estimate``) when ``estimate`` is given (module docstring)."""
    v = np.asarray(torch.as_tensor(values).double())
    tail = (1 - confidence) / 2
    shift = float(v.mean()) - estimate if estimate is not None else 0.0
    return [float(np.quantile(v, tail)) - shift, float(np.quantile(v, 1 - tail)) - shift]


@dataclass
class Reference:
    """A reference feature set and what every comparison with it reuses."""

    features: Tensor
    radii_pr: Tensor
    radii_dc: Tensor
    mean: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    root: np.ndarray = field(repr=False)
    kid_cache: dict = field(default_factory=dict, repr=False)
    """Kernel sums of the reference's KID subsets (:func:`hierot.evaluation._kid.kid`)."""

    def __len__(self) -> int:
        return len(self.features)


def reference(features, *, chunk: int = CHUNK) -> Reference:
    """The reference set's k-NN radii (k = 3 and 5, one pass), mean, covariance and its root."""
    r = _f64(features)
    kmax = max(PRECISION_RECALL_K, DENSITY_COVERAGE_K)
    if len(r) <= kmax:
        raise ValueError(f"need more than {kmax} reference points, got {len(r)}")
    parts = [torch.cdist(r[s:s + chunk], r).topk(kmax + 1, dim=1, largest=False).values
             for s in range(0, len(r), chunk)]
    nearest = torch.cat(parts)  # column 0: the point itself
    f = r.numpy()
    cov = np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])
    return Reference(r, nearest[:, PRECISION_RECALL_K], nearest[:, DENSITY_COVERAGE_K],
                     f.mean(0), cov, _sqrt_psd(cov))


class _Near:
    """Per reference point, the indices of (at most :data:`NEAR_KEPT` of) the samples near it,
    gathered tile by tile as sparse (point, sample) pairs."""

    def __init__(self, points: int, samples: int):
        self.points, self.samples = points, samples
        self.pairs: list[Tensor] = []
        self.count = 0

    def add(self, near: Tensor, offset: int) -> None:
        """``near[j, i]``: sample ``offset + j`` is near reference point ``i``."""
        pairs = near.nonzero()
        if len(pairs):
            self.pairs.append(torch.stack([pairs[:, 1], pairs[:, 0] + offset], 1))
            self.count += len(pairs)
        if self.count > 64 * self.points * NEAR_KEPT:  # many: keep only what is needed
            self.pairs = [self._first()]
            self.count = len(self.pairs[0])

    def _first(self) -> Tensor:
        pairs = torch.cat(self.pairs) if self.pairs else torch.zeros(0, 2, dtype=torch.long)
        order = (pairs[:, 0] * (self.samples + 1) + pairs[:, 1]).argsort()
        pairs = pairs[order]
        start = torch.searchsorted(pairs[:, 0].contiguous(), pairs[:, 0].contiguous())
        return pairs[torch.arange(len(pairs)) - start < NEAR_KEPT]

    def dense(self) -> Tensor:
        """``(points, NEAR_KEPT)`` sample indices, padded with ``samples`` (no sample)."""
        pairs = self._first()
        order = (pairs[:, 0] * (self.samples + 1) + pairs[:, 1]).argsort()
        pairs = pairs[order]
        rank = torch.arange(len(pairs)) - torch.searchsorted(pairs[:, 0].contiguous(),
                                                             pairs[:, 0].contiguous())
        out = torch.full((self.points, NEAR_KEPT), self.samples, dtype=torch.long)
        out[pairs[:, 0], rank] = pairs[:, 1]
        return out


def knn_parts(ref: Reference, fake, *, chunk: int = CHUNK) -> dict[str, Tensor]:
    """Per-sample and per-reference-point parts of the four k-NN metrics (module docstring)."""
    f = _f64(fake)
    m, n = len(f), len(ref)
    fake_radii = knn_radii(f, PRECISION_RECALL_K, chunk=chunk) * (1 + ROUND_OFF)
    r_pr, r_dc = ref.radii_pr * (1 + ROUND_OFF), ref.radii_dc * (1 + ROUND_OFF)
    inside = torch.zeros(m, dtype=torch.bool)
    balls = torch.zeros(m, dtype=torch.long)
    covered, recalled = _Near(n, m), _Near(n, m)
    for s in range(0, m, chunk):
        d = torch.cdist(f[s:s + chunk], ref.features)  # (chunk, n): the only big tile
        inside[s:s + chunk] = (d <= r_pr).any(1)
        within = d <= r_dc
        balls[s:s + chunk] = within.sum(1)
        covered.add(within, s)
        recalled.add(d <= fake_radii[s:s + chunk, None], s)
    return {"inside": inside, "balls": balls, "covered": covered.dense(),
            "recalled": recalled.dense()}


def knn_values(parts: dict[str, Tensor], counts: Tensor | None = None) -> dict[str, Tensor]:
    """The four metrics from :func:`knn_parts`; per resample when ``counts`` ``(B, M)`` gives
    how often each sample is drawn."""
    m = len(parts["inside"])
    if counts is None:
        counts = torch.ones(1, m, dtype=torch.float64)
    present = torch.cat([counts > 0, torch.zeros(len(counts), 1, dtype=torch.bool)], 1)

    def share_near(near: Tensor) -> Tensor:
        # only the points some sample is near can be hit, through their filled slots only
        rows = near[near[:, 0] < m]
        rows = rows[:, : int((rows < m).sum(1).max()) if len(rows) else 0]
        return present[:, rows].any(-1).double().sum(1) / len(near)

    return {
        "precision": (counts * parts["inside"]).sum(1) / m,
        "recall": share_near(parts["recalled"]),
        "density": (counts * parts["balls"]).sum(1) / (DENSITY_COVERAGE_K * m),
        "coverage": share_near(parts["covered"]),
    }


def _counts(m: int, b: int, generator: torch.Generator) -> Tensor:
    draws = torch.randint(m, (b, m), generator=generator)
    return torch.zeros(b, m, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(b, m, dtype=torch.float64))


def frechet_to(ref: Reference, mean: np.ndarray, cov: np.ndarray) -> float:
    """Squared Fréchet distance from the reference's Gaussian fit to ``(mean, cov)``."""
    middle = ref.root @ cov @ ref.root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    value = ((ref.mean - mean) ** 2).sum() + np.trace(ref.cov) + np.trace(cov) - 2.0 * cross
    return max(float(value), 0.0)


def frechet_resamples(ref: Reference, fake, resamples: int, generator: torch.Generator) -> list:
    """Group-bootstrap values of the Fréchet distance (module docstring)."""
    f = _f64(fake).numpy()
    m, d = f.shape
    groups = min(FD_GROUPS, m // 2)
    if d > FD_MAX_DIM or groups < 2:
        return []
    cuts = np.array_split(np.arange(m), groups)
    sums = np.stack([f[c].sum(0) for c in cuts])
    # root S_g root and tr S_g of every group's outer-product sum S_g: a resample's
    # root cov root is then a weighted sum of them, less a rank-one term
    rooted = np.stack([(f[c] @ ref.root).T @ (f[c] @ ref.root) for c in cuts]).reshape(groups, -1)
    traces = np.array([(f[c] ** 2).sum() for c in cuts])
    sizes = np.array([len(c) for c in cuts], np.float64)
    fixed = float(np.trace(ref.cov))
    values = []
    for _ in range(resamples):
        pick = torch.randint(groups, (groups,), generator=generator).numpy()
        w = np.bincount(pick, minlength=groups).astype(np.float64)
        size = (w * sizes).sum()
        mean = (w @ sums) / size
        shifted = ref.root @ mean
        middle = ((w @ rooted).reshape(d, d) - size * np.outer(shifted, shifted)) / (size - 1)
        trace = ((w @ traces) - size * (mean @ mean)) / (size - 1)
        cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
        values.append(max(float(((ref.mean - mean) ** 2).sum() + fixed + trace - 2 * cross), 0.0))
    return values


def measure(ref: Reference, fake, *, resamples: int = RESAMPLES, seed: int = 0,
            chunk: int = CHUNK) -> dict:
    """FD, precision, recall, density and coverage of ``fake`` against ``ref``, with intervals.

    Returns
    -------
    dict
        ``fd``, ``precision``, ``recall``, ``density``, ``coverage`` (point values) and
        ``intervals`` ``{metric: [lo, hi]}`` (:data:`CONFIDENCE`, :data:`RESAMPLES` resamples of
        the samples; ``fd`` absent for features wider than :data:`FD_MAX_DIM`).
    """
    f = _f64(fake)
    if len(f) <= PRECISION_RECALL_K:
        raise ValueError(f"need more than {PRECISION_RECALL_K} samples, got {len(f)}")
    f_np = f.numpy()
    fd = frechet_to(ref, f_np.mean(0), np.cov(f_np, rowvar=False).reshape(f.shape[1], -1))
    parts = knn_parts(ref, f, chunk=chunk)
    result: dict = {"fd": fd, **{k: float(v[0]) for k, v in knn_values(parts).items()}}
    generator = torch.Generator().manual_seed(seed)
    boot: dict[str, list] = {k: [] for k in ("precision", "recall", "density", "coverage")}
    for start in range(0, resamples, _BATCH):
        counts = _counts(len(f), min(_BATCH, resamples - start), generator)
        for k, v in knn_values(parts, counts).items():
            boot[k] += v.tolist()
    intervals = {k: interval(v, result[k]) for k, v in boot.items()}
    fd_values = frechet_resamples(ref, f, resamples, generator)
    if fd_values:
        intervals["fd"] = interval(fd_values, fd)
    result["intervals"] = intervals
    return result


__all__ = ["CONFIDENCE", "RESAMPLES", "Reference", "frechet_to", "interval", "knn_parts",
           "knn_values", "measure", "reference"]
