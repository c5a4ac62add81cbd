"""The training objectives: StackedWAE (Eq. 10) and the flat WAE with implicit prior (Eq. 7)."""

from hierot.objectives.flat import FlatWAE
from hierot.objectives.stacked import StackedWAE
from hierot.objectives.terms import Objective, Terms

OBJECTIVES: dict[str, type[Objective]] = {"stacked": StackedWAE, "flat": FlatWAE}

__all__ = ["OBJECTIVES", "FlatWAE", "Objective", "StackedWAE", "Terms"]
