"""A griffe extension: hierot's reStructuredText docstring markup, rendered by mkdocstrings.

hierot's docstrings are NumPy style with Sphinx roles (``:class:`~hierot.spec.Spec```),
``.. math::`` blocks and simple tables, which ``hierot list`` and ``help()`` read as they are.
For the API pages this extension rewrites each docstring once the package is loaded:

* ``:class:`X``` (``:func:``, ``:meth:``, ``:mod:``, ``:attr:``, ``:data:``, ``:exc:``,
  ``:obj:``) -> an optional cross-reference: a link where ``X`` is rendered on the site, code
  text otherwise; ``~`` keeps the last name only, as in Sphinx;
* ``:math:`x``` -> ``$x$``; a ``.. math::`` block -> a ``$$ ... $$`` block (arithmatex);
* a simple table (rows framed by ``=== ===`` lines) -> a Markdown table;
* a paragraph ending ``::`` before a literal block -> ``:``.

Configured in ``mkdocs.yml`` (``extensions: [docs/_ext/sphinx_roles.py:SphinxRoles]``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(class|func|meth|mod|attr|data|exc|obj|math):`([^`]+)`")
_BORDER = re.compile(r"^(\s*)(=+)((?: +=+)+)\s*$")


def _reference(owner: griffe.Object, target: str) -> str:
    short = target.startswith("~")
    target = target.lstrip("~").strip()
    label = target.rsplit(".", 1)[-1] if short else target
    identifier = target.rstrip("()")
    for scope in (owner, owner.parent, owner.module):
        if scope is None or "." in identifier:
            break
        try:
            identifier = scope.resolve(identifier)
            break
        except (griffe.NameResolutionError, AttributeError, KeyError, ValueError):
            continue
    return (f'<autoref identifier="{html.escape(identifier)}" optional>'
            f"<code>{html.escape(label)}</code></autoref>")


def _roles(owner: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        kind, body = match.groups()
        return f"${body}$" if kind == "math" else _reference(owner, body)

    return _ROLE.sub(replace, text)


def _math_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        body = [stripped.removeprefix(".. math::").strip()]
        i += 1
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
            body.append(lines[i].strip())
            i += 1
        formula = "\n".join(b for b in body if b)
        out += [f"{indent}$$", *(f"{indent}{f}" for f in formula.splitlines()), f"{indent}$$", ""]
    return out


def _columns(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _tables(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        if not _BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        indent, spans = _BORDER.match(lines[i]).group(1), _columns(lines[i])
        rows, borders, i = [], 1, i + 1
        while i < len(lines) and borders < 3:
            line = lines[i]
            i += 1
            if _BORDER.match(line):
                borders += 1
                if borders == 2 and i < len(lines) and not lines[i].strip():
                    break  # a table without a header: two borders, then a blank line
                continue
            cells = [line[a:(spans[k + 1][0] if k + 1 < len(spans) else None)].strip()
                     for k, (a, _) in enumerate(spans)]
            if rows and not cells[0]:  # a continuation line of the last column
                rows[-1][-1] = f"{rows[-1][-1]} {cells[-1]}".strip()
            else:
                rows.append(cells)
        if not rows:
            continue
        header, body = (rows[0], rows[1:]) if borders == 3 else ([" "] * len(spans), rows)
        out.append("")
        out.append(indent + "| " + " | ".join(header) + " |")
        out.append(indent + "|" + "---|" * len(spans))
        out += [indent + "| " + " | ".join(r) + " |" for r in body]
        out.append("")
    return out


def convert(owner: griffe.Object, text: str) -> str:
    """``text`` (a docstring of ``owner``) with its reStructuredText markup in Markdown."""
    lines = _tables(_math_blocks(text.splitlines()))
    text = "\n".join(lines)
    text = re.sub(r"(\S)::\n", r"\1:\n", text)
    return _roles(owner, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = convert(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)
