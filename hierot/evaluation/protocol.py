"""The sample-evaluation protocol of ``hierot eval``: what is compared with what, and how.

The recipe (``docs/evaluation.md`` states it for citing; ``eval.json`` records it under
``sample_quality.protocol`` with :data:`VERSION`):

1. **Features**: the extractor named by ``--features`` (default ``classifier``, whose weights
   ship with hierot for ``mnist-5k``/``mnist``, ``fashion-mnist`` and ``digits``), identified by
   its name, version and the sha256 of its weights (:mod:`hierot.evaluation.features`).
2. **Samples**: ``N`` (``--samples``, default :data:`SAMPLES`) generated samples per sampler and
   decoding path, drawn with the evaluation seed, independent of the test set's size.
3. **Reference set** (:func:`reference_split`): the test split when it holds at least N points,
   else the larger of the two splits (the training split when the test split is smaller);
   ``min(N, size)`` points of it, a seeded uniform choice. The other split, at most as many
   points, is compared with the reference the same way: the *floor* (what data itself scores).
4. **Metrics** (:mod:`hierot.evaluation._bootstrap`, :mod:`hierot.evaluation._kid`): Fréchet
   distance, KID (100 subsets of 1,000), precision/recall (k = 3), density/coverage (k = 5) and
   the predicted-class histogram (extractors with classes), each with a 95 % bootstrap interval
   from 200 resamples of the samples.
"""

from __future__ import annotations

import math
import os

from torch import Tensor

from hierot.errors import HierotError
from hierot.evaluation import _bootstrap as bootstrap
from hierot.evaluation import _kid as kid
from hierot.evaluation.sample_quality import DENSITY_COVERAGE_K, PRECISION_RECALL_K
from hierot.evaluation.trained import subset

VERSION = "hierot-eval/2"
"""The protocol's version, recorded in ``eval.json``; bumped whenever a number would change."""
SAMPLES = 10_000
"""Generated samples per sampler and path (``--samples``)."""
MEMORY_SHARE = 0.5
"""``--samples`` may use at most this share of the memory available."""


def reference_split(test_size: int, train_size: int, n: int) -> str:
    """``"test"`` when the test split holds at least ``n`` points, else the larger split."""
    if test_size >= n or test_size >= train_size:
        return "test"
    return "train"


def available_memory() -> int:
    """Bytes of memory available (``MemAvailable``; the physical memory where unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_samples(n: int, shape: tuple[int, ...], dim: int, reference: int) -> None:
    """An error naming ``--samples`` when ``n`` is below 10 or needs more memory than allowed.

    The estimate: the samples (float32), their features and those of the reference (float64),
    the bootstrap's resample counts (float64, 25 x N) and one tile of distances.
    """
    if n < 10:
        raise HierotError(f"--samples must be at least 10, got {n}")
    need = (n * math.prod(shape) * 4 + (n + reference) * dim * 8 + 25 * n * 8
            + bootstrap.CHUNK * max(n, reference) * 8 * 3)
    allowed = MEMORY_SHARE * available_memory()
    if need > allowed:
        raise HierotError(
            f"--samples {n} needs about {need / 2**30:.1f} GiB, more than half the memory "
            f"available ({allowed / 2**30:.1f} GiB allowed); choose fewer samples")


def _block(ref: bootstrap.Reference, ref_classes, features: Tensor, predicted, extractor,
           resamples: int, seed: int) -> dict:
    from hierot.evaluation.sample_quality import class_coverage

    out = bootstrap.measure(ref, features, resamples=resamples, seed=seed)
    out["fcd"] = out.pop("fd")
    out["intervals"]["fcd"] = out["intervals"].pop("fd", None)
    kernel = kid.kid(ref.features, features, seed=seed, resamples=resamples,
                     cache=ref.kid_cache)
    out["kid"] = kernel.pop("kid")
    out["intervals"]["kid"] = kernel.pop("interval")
    out["kid_std"] = kernel["std"]
    out["points"] = len(features)
    if predicted is not None:
        out["class_coverage"] = class_coverage(predicted, ref_classes, extractor.classes)
    return out


def sample_quality(run, samples: int, seed: int, samplers, extractor, *,
                   resamples: int = bootstrap.RESAMPLES) -> tuple[dict, tuple]:
    """Every sample metric of every sampler and path of ``run`` (module docstring).

    Parameters
    ----------
    run:
        A :class:`~hierot.evaluation.trained.LoadedRun`.
    samples:
        N, generated samples per sampler and path.
    seed:
        Seeds the reference subset, the samples and the resamples.
    samplers:
        Sampler names or options (:mod:`hierot.evaluation.samplers`).
    extractor:
        A feature extractor (:mod:`hierot.evaluation.features`).
    resamples:
        Bootstrap resamples per interval.

    Returns
    -------
    tuple
        The ``sample_quality`` block of ``eval.json``, and the reference (a
        :class:`~hierot.evaluation._bootstrap.Reference` and its predicted classes) for
        :func:`~hierot.evaluation._per_layer.per_layer_quality`.
    """
    from hierot.evaluation.samplers import PATHS, draw, fitted, label, parse_sampler, top_codes

    data = run.data
    split = reference_split(len(data.test_x), len(data.train_x), samples)
    other = "train" if split == "test" else "test"
    ref_x = getattr(data, f"{split}_x")
    ref_rows = subset(len(ref_x), samples, seed)
    check_samples(samples, tuple(data.shape), extractor.dim, len(ref_rows))

    def measure(x: Tensor) -> tuple[Tensor, Tensor | None]:
        features = extractor.features(x)
        return features, extractor.predict(features)

    ref_features, ref_classes = measure(ref_x[ref_rows])
    ref = bootstrap.reference(ref_features)
    other_x = getattr(data, f"{other}_x")
    floor = _block(ref, ref_classes, *measure(other_x[subset(len(other_x), samples, seed)]),
                   extractor, resamples, seed)
    result = {
        "metric": "Fréchet distance (FD) in the extractor's features"
        if extractor.info()["name"] != "classifier" else "Fréchet classifier distance (FCD)",
        "protocol": protocol_record(samples, split, len(ref_rows), len(ref_x), other,
                                    floor["points"], extractor, resamples, seed),
        "samples": samples,
        "classifier": extractor.info(),
        "floor": floor,
        "samplers": {},
        "sampler_options": {},
    }
    codes = None
    for options in (parse_sampler(s) for s in samplers):
        name = label(options)
        if name in result["samplers"]:
            continue
        if options.name != "prior" and codes is None:
            codes = top_codes(run, seed=seed)
        sampler = fitted(run, options, seed=seed, codes=codes)
        result["sampler_options"][name] = options.model_dump(mode="json")
        result["samplers"][name] = {
            path: _block(ref, ref_classes, *measure(draw(run.model, sampler, samples, path,
                                                         seed=seed, device=run.device)),
                         extractor, resamples, seed)
            for path in PATHS}
    first = next(iter(result["samplers"].values()))["ancestral"]
    result["fcd"] = first["fcd"]  # the first sampler's (by default the prior's) ancestral samples
    result["kid"] = first["kid"]
    result["floor_fcd"] = floor["fcd"]
    return result, (ref, ref_classes)


def protocol_record(samples: int, split: str, points: int, split_size: int, other: str,
                    other_points: int, extractor, resamples: int, seed: int) -> dict:
    """The protocol as ``eval.json`` records it (see ``docs/evaluation.md``)."""
    info = extractor.info()
    return {
        "version": VERSION,
        "features": {k: info.get(k) for k in ("name", "source", "version", "sha256", "dim",
                                               "weights", "weights_file") if k in info},
        "samples": samples,
        "reference": {"split": split, "points": points, "split_size": split_size,
                      "rule": "the test split when it holds at least N points, else the larger "
                              "split; min(N, size) points, a seeded uniform choice"},
        "floor": {"split": other, "points": other_points},
        "k": {"precision_recall": PRECISION_RECALL_K, "density_coverage": DENSITY_COVERAGE_K},
        "kid": {"kernel": "(x.y/d + 1)^3", "subsets": kid.SUBSETS,
                "subset_size": kid.SUBSET_SIZE},
        "intervals": {"method": "bias-corrected percentile bootstrap of the samples, reference "
                                "fixed", "confidence": bootstrap.CONFIDENCE,
                      "resamples": resamples, "fd_groups": bootstrap.FD_GROUPS},
        "seed": seed,
    }


__all__ = ["SAMPLES", "VERSION", "check_samples", "protocol_record", "reference_split",
           "sample_quality"]
