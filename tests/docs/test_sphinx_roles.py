"""The docs' griffe extension (docs/_ext/sphinx_roles.py): docstring markup the API pages render."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe", reason="the docs extra (CI's second stage runs this)")

PATH = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "sphinx_roles.py"
spec = importlib.util.spec_from_file_location("sphinx_roles", PATH)
sphinx_roles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sphinx_roles)


def test_roles_math_and_tables_become_markdown():
    package = griffe.load("hierot.schedules", extensions=griffe.load_extensions(
        sphinx_roles.SphinxRoles))
    text = package.docstring.value
    assert ":math:" not in text and ":class:" not in text
    assert "$f = 1$" in text  # a :math: role
    assert "| `constant` | $f = 1$ |" in text.replace("``", "`")  # a simple table, as Markdown
    assert '<autoref identifier="torch.optim.lr_scheduler.LambdaLR" optional>' in text


def test_a_math_block_and_a_short_reference():
    owner = griffe.load("hierot.api")
    text = sphinx_roles.convert(owner, "See :func:`~hierot.api.fit`::\n\n.. math::\n\n    x^2\n")
    assert '<autoref identifier="hierot.api.fit" optional><code>fit</code></autoref>:' in text
    assert "$$\nx^2\n$$" in text
