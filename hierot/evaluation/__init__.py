"""Evaluation of a trained run: metrics (``eval.json``), figures and a one-page report.

Each module does one job:

=================== ===========================================================================
``trained``         load a trained run at a checkpoint, encode and generate in batches
``metrics``         objective terms, reconstruction error per encoding depth, top divergences,
                    active units
``classifier``      the small feature classifier behind the Fréchet classifier distance (cached)
``features``        the ``features`` registry: shipped classifiers; ``pretrained``: Inception,
                    DINOv2 from a user-named file
``protocol``        the sample-evaluation recipe (``hierot-eval/2``): N, the reference set
``bootstrap``       tiled k-NN metrics and the FD against a reference, with bootstrap intervals
``kid``             the kernel inception distance (unbiased MMD² over subsets)
``per_layer``       held-out data regenerated from every depth (Figure 3b, quantitative)
``compare``         ``hierot compare``: groups of runs, mean ± sd, Welch's t-test, verdicts
``frechet``         the Fréchet distance between Gaussian fits of two feature sets
``sample_quality``  precision/recall, density/coverage and class coverage of samples
``samplers``        post-hoc samplers of the top latent (prior, gmm, empirical), two decoding paths
``probe``           a linear probe of the labels from each latent layer
``evaluator``       every metric of a run, ``eval.json`` and its table
``figures``         the paper's figures 2a-c, 3a-b and 5b for any run
``report``          ``report.md``
``plotting``        drawing helpers: image mosaics, 2-D views of vectors, sample grids, saving
=================== ===========================================================================

The ``hierot eval``, ``plot``, ``sample``, ``report`` and ``compare`` sub-commands live in
:mod:`hierot.cli.evaluation`: the command line imports this package, never the reverse.

The public names are imported lazily (so ``hierot --help`` does not import matplotlib).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LoadedRun": "hierot.evaluation.trained",
    "load_run": "hierot.evaluation.trained",
    "evaluate": "hierot.evaluation.evaluator",
    "format_table": "hierot.evaluation.evaluator",
    "frechet_distance": "hierot.evaluation.frechet",
    "linear_probe": "hierot.evaluation.probe",
    "plot_run": "hierot.evaluation.figures",
    "write_report": "hierot.evaluation.report",
}

__all__ = ["LoadedRun", "evaluate", "format_table", "frechet_distance", "linear_probe", "load_run",
           "plot_run", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
