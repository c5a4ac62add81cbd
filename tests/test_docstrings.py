"""``hierot._docstrings.plain_text``: a docstring's first line for the terminal (hierot list)."""

from __future__ import annotations

from hierot._docstrings import plain_text
from hierot.registry import ALL


def test_plain_text_rewrites_roles():
    assert plain_text("See :class:`~hierot.spec.Spec` and ``fit``: :math:`\\frac{a}{b}`.") == (
        "See Spec and fit: frac ab.")


def test_every_summary_is_plain_text():
    for registry in ALL.values():
        for entry in registry.entries():
            assert ":math:" not in entry.summary and "``" not in entry.summary, entry.name
