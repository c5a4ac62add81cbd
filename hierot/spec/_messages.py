"""Pydantic's validation errors as hierot's messages, without the validator's internals.

Pydantic names the members of a union in an error's location (``divergence.scales.literal['wae']``,
``tuple[constrained-float, ...]``), adds a "Tuple should have at least 1 item after validation, not
0" after every refused item, and answers an unknown tag with "Input tag 'x' found using 'name'
does not match any of the expected tags". Here each becomes one line a user can act on:
``divergence.scales: expected 'wae' or a list of numbers; got 'wea'``, the item's own error only,
and ``unknown schedule 'x'; did you mean ...? Valid: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hierot.errors import unknown_name_message

_MEMBER = re.compile(
    r"^(literal\[|tuple\[|list\[|dict\[|set\[|frozenset\[|constrained-|function-|nullable\[|"
    r"union\[|lax-|json-|is-instance\[|"
    r"(int|float|str|bool|none|bytes|decimal)$)"
)
"""How pydantic labels the members of a union in a location."""

_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
          "none": "null", "bytes": "a string", "decimal": "a number"}

KIND_OF_FIELD = {"callbacks": "callback", "schedule": "schedule", "weights": "weight schedule"}
"""Singular nouns for the fields whose tagged unions have no registry of their own."""


def is_member(item: Any) -> bool:
    return isinstance(item, str) and bool(_MEMBER.match(item))


def describe(member: str) -> str:
    """``literal['wae']`` -> ``'wae'``; ``tuple[constrained-float, ...]`` -> ``a list of
    numbers``."""
    if member.startswith("literal["):
        return " or ".join(member[len("literal["):-1].split(","))
    if member.startswith(("tuple[", "list[", "set[", "frozenset[")):
        inner = member[member.index("[") + 1:-1].split(",")[0].strip()
        one = describe(inner)
        plural = {"an integer": "integers", "a number": "numbers", "a string": "strings"}
        return f"a list of {plural.get(one, one)}"
    if member.startswith("dict["):
        return "a mapping"
    base = member.removeprefix("constrained-").removeprefix("nullable[").rstrip("]")
    return _KINDS.get(base, base)


def union_lines(errors: Sequence[Mapping[str, Any]], path_of) -> tuple[list[str], set[int]]:
    """One line per value that matched no member of a union; the indices of the errors it covers.

    ``path_of(loc)`` gives the dotted path of a location (the spec's tags stripped).
    """
    groups: dict[tuple, list[int]] = {}
    for index, err in enumerate(errors):
        at = next((i for i, item in enumerate(err["loc"]) if is_member(item)), None)
        if at is not None:
            groups.setdefault(tuple(err["loc"][:at]), []).append(index)
    lines, covered = [], set()
    for prefix, indices in groups.items():
        members, detail = [], ""
        for index in indices:
            err = errors[index]
            member = next(item for item in err["loc"] if is_member(item))
            if describe(member) not in members:
                members.append(describe(member))
            rest = err["loc"][err["loc"].index(member) + 1:]
            if rest and not detail:
                where = ".".join(map(str, rest))
                detail = f" ({'item ' if str(rest[0]).isdigit() else ''}{where}: {err['msg']})"
        value = errors[indices[0]]["input"]
        if isinstance(value, dict):
            value = value.get(prefix[-1], value) if prefix else value
        lines.append(f"{path_of(prefix)}: expected {' or '.join(members)}; got "
                     f"{_short(value)}{detail}")
        covered.update(indices)
    return lines, covered


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def redundant(err: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> bool:
    """A "should have at least N items after validation" that only follows its items' errors."""
    if err["type"] != "too_short" or not isinstance(err["input"], (list, tuple)):
        return False
    if len(err["input"]) < err.get("ctx", {}).get("min_length", 0):
        return False  # really too short
    loc = tuple(err["loc"])
    return any(tuple(e["loc"][: len(loc)]) == loc and len(e["loc"]) > len(loc) for e in errors)


def unknown_tag(err: Mapping[str, Any], field: str) -> str:
    """``unknown schedule 'nosuch'; did you mean ...? Valid: ...`` from a ``union_tag_invalid``."""
    expected = [t.strip().strip("'\"") for t in err["ctx"]["expected_tags"].split(",")]
    kind = KIND_OF_FIELD.get(field, field)
    return unknown_name_message(kind, err["ctx"]["tag"], [t for t in expected if t])
