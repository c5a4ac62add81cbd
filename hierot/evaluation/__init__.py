"""Evaluation of a trained run: metrics (``eval.json``), figures and a one-page report.

Each module does one job; the modules named with a leading underscore are private (their public
names are exported here):

=================== ===========================================================================
``trained``         load a trained run at a checkpoint, encode and generate in batches
``_metrics``        objective terms, reconstruction error per encoding depth, top divergences,
                    active units
``classifier``      the small feature classifier behind the Fréchet classifier distance (cached)
``features``        the ``features`` registry: shipped classifiers; ``pretrained``: Inception,
                    DINOv2 from a user-named file
``protocol``        the sample-evaluation recipe (``hierot-eval/2``): N, the reference set
``_bootstrap``      tiled k-NN metrics and the FD against a reference, with bootstrap intervals
``_kid``            the kernel inception distance (unbiased MMD² over subsets)
``_per_layer``      held-out data regenerated from every depth (Figure 3b, quantitative)
``_whole_set``      the run's divergence on the whole encoded training set
``compare``         ``hierot compare``: groups of runs, mean ± sd, Welch's t-test, verdicts
``_frechet``        the Fréchet distance between Gaussian fits of two feature sets
``sample_quality``  precision/recall, density/coverage and class coverage of samples
``samplers``        post-hoc samplers of the top latent (prior, gmm, empirical), two decoding paths
``_probe``          a linear probe of the labels from each latent layer
``evaluator``       every metric of a run, ``eval.json`` and its table
``figures``         the paper's figures 2a-c, 3a-b and 5b for any run
``report``          ``report.md``
``plotting``        drawing helpers: image mosaics, 2-D views of vectors, sample grids, saving
=================== ===========================================================================

The ``hierot eval``, ``plot``, ``sample``, ``report`` and ``compare`` sub-commands live in
:mod:`hierot.cli`: the command line imports this package, never the reverse.

The public names are imported lazily (so ``hierot --help`` does not import matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers and the API reference; at run time: __getattr__
    from hierot.evaluation._frechet import frechet_distance
    from hierot.evaluation._metrics import objective_terms, reconstruction_errors
    from hierot.evaluation._probe import linear_probe
    from hierot.evaluation.evaluator import evaluate, format_table
    from hierot.evaluation.figures import plot_run
    from hierot.evaluation.report import write_report
    from hierot.evaluation.trained import LoadedRun, decode, encode, generate, load_run, subset

_EXPORTS = {
    "LoadedRun": "hierot.evaluation.trained",
    "load_run": "hierot.evaluation.trained",
    "encode": "hierot.evaluation.trained",
    "decode": "hierot.evaluation.trained",
    "generate": "hierot.evaluation.trained",
    "subset": "hierot.evaluation.trained",
    "evaluate": "hierot.evaluation.evaluator",
    "format_table": "hierot.evaluation.evaluator",
    "objective_terms": "hierot.evaluation._metrics",
    "reconstruction_errors": "hierot.evaluation._metrics",
    "frechet_distance": "hierot.evaluation._frechet",
    "linear_probe": "hierot.evaluation._probe",
    "plot_run": "hierot.evaluation.figures",
    "write_report": "hierot.evaluation.report",
}
"""Public name -> the module defining it (imported on first use)."""

__all__ = ["LoadedRun", "decode", "encode", "evaluate", "format_table", "frechet_distance",
           "generate", "linear_probe", "load_run", "objective_terms", "plot_run",
           "reconstruction_errors", "subset", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
