"""The built-in objectives; importing this package registers them in
:data:`hierot.registry.objectives`.

``stacked-wae`` (Eq. 10), ``wae`` (the flat WAE with the implicit prior, Eq. 7), ``hvae`` (the
Markov hierarchical VAE) and ``lvae`` (the Ladder VAE). The contract every objective follows is in
:mod:`hierot.objectives.base`; see ``docs/objective.md``.
"""

from hierot.objectives.base import Inference, Objective, ObjectiveContext, ObjectiveOptions
from hierot.objectives.flat import FlatWAE
from hierot.objectives.ladder import LVAE
from hierot.objectives.stacked import StackedWAE
from hierot.objectives.terms import Terms
from hierot.objectives.vae import HVAE

__all__ = [
    "HVAE",
    "LVAE",
    "FlatWAE",
    "Inference",
    "Objective",
    "ObjectiveContext",
    "ObjectiveOptions",
    "StackedWAE",
    "Terms",
]
