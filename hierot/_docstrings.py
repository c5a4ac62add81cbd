"""Docstring lines as plain text for the terminal (``hierot list``): no reStructuredText roles,
short LaTeX formulas in readable symbols."""

from __future__ import annotations

import re

_ROLE = re.compile(r":(math|[a-z]+):`~?([^`]*)`")
_LATEX_WORDS = {"sum": "Σ", "Sigma": "Σ", "lambda": "λ", "sigma": "σ", "mu": "μ", "varepsilon": "ε",
                "epsilon": "ε", "log": "log", "exp": "exp", "cdot": "·", "times": "×", "le": "≤",
                "ge": "≥"}


def _plain_math(tex: str) -> str:
    """Readable text for a short LaTeX formula: ``\\|z - \\tilde z\\|_2`` -> ``‖z - z̃‖_2``."""
    text = tex.replace("\\|", "‖").replace("\\,", " ").replace("\\!", "")
    text = re.sub(r"\\(?!tilde)([A-Za-z]+)", lambda m: f" {_LATEX_WORDS.get(m[1], m[1])} ", text)
    text = re.sub(r"\\tilde\s*\{?(\w)\}?", "\\1\u0303", text)
    text = re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()
    text = re.sub(r"\s+([_^)\]])", r"\1", text)  # no space before a sub/superscript or a closing
    text = re.sub(r"([_^(\[])\s+", r"\1", text)  # nor after one, or after an opening
    text = re.sub(r"(^|\s)\|\s+", r"\1|", text)  # an opening |
    return re.sub(r"^-\s+", "-", text)


def plain_text(line: str) -> str:
    """A docstring line without reStructuredText: ``:math:`x^2``` -> ``x^2``, ````f```` -> ``f``."""
    line = _ROLE.sub(lambda m: _plain_math(m.group(2)) if m.group(1) == "math"
                     else m.group(2).rsplit(".", 1)[-1], line)
    return line.replace("``", "")
