"""Checking a sweep's ``heldout.*`` metric against the base spec's objective, before training.

``RUN/heldout.json`` (written by :func:`hierot.sweeps._trial.heldout`) holds the run's objective on
its test split: ``total``, ``step``, ``test_points``, ``batch_size``, ``batches`` and every term
under ``unweighted`` and ``weighted``. The terms are those the objective returns (``rec_x``,
``rec_z1`` ... ``match_zN`` for Eq. 10, the penalties), found by one forward pass on a test batch,
so a metric naming a term the objective does not have fails before anything trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hierot.errors import HierotError
from hierot.run import layout

if TYPE_CHECKING:
    from hierot.spec import Spec

HELDOUT_FILE = layout.HELDOUT
HELDOUT_NUMBERS = ("total", "step", "test_points", "batch_size", "batches")
"""The numbers at the top level of ``heldout.json``; the terms are under ``unweighted`` and
``weighted``."""


def objective_term_names(spec: Spec) -> list[str]:
    """The names of the terms ``spec``'s objective returns (``rec_x``, ..., ``match_zN``, the
    penalties): one forward pass, model in eval mode, on a test batch of the spec's data."""
    import torch

    from hierot._utils import seeded
    from hierot.builder import build

    with seeded(spec.seed), torch.no_grad():
        built = build(spec)
        built.objective.eval()
        x = built.data.test_x[: max(2, min(len(built.data.test_x), spec.train.batch_size))]
        return list(built.objective(x).unweighted)


def metric_errors(metric: str, resolved: str, spec: Spec) -> list[str]:
    """Why a sweep's ``heldout.*`` metric names no number of ``heldout.json`` for ``spec``
    (empty when it does, or when the metric is an ``eval.*`` key, read after evaluation).

    ``metric`` is the sweep file's ``metric`` as written, ``resolved`` its full name
    (``SweepSpec.resolved_metric``: ``heldout.total`` for ``heldout``)."""
    import difflib

    source, _, path = resolved.partition(".")
    if source != "heldout":
        return []
    kind, _, term = path.partition(".")
    if kind in HELDOUT_NUMBERS and not term:
        return []

    def valid() -> list[str]:
        try:
            terms = objective_term_names(spec)
        except HierotError:
            terms = ["<term>"]
        return ([f"heldout.{k}" for k in HELDOUT_NUMBERS]
                + [f"heldout.{w}.{t}" for w in ("unweighted", "weighted") for t in terms])

    if kind in ("unweighted", "weighted") and term in objective_term_names(spec):
        return []
    choices = valid()
    close = difflib.get_close_matches(resolved, choices, n=3)
    return [f"metric: {metric!r} is not a number in {HELDOUT_FILE} of this sweep's "
            f"objective; valid: {', '.join(choices)}"
            + (f"; did you mean {' or '.join(close)}?" if close else "")]
