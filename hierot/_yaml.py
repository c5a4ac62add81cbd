"""The one YAML reader of the package: numbers as people write them, no duplicate keys.

PyYAML follows YAML 1.1, whose float pattern needs a dot and a signed exponent: ``1e-3``,
``1E5`` and ``-2e5`` are read as *strings*, and ``1.0e6`` too. YAML 1.2 (and JSON, and every
programming language) reads them as numbers. :func:`parse_yaml` uses a safe loader whose float
pattern is YAML 1.2's core schema (plus the 1.1 forms PyYAML already read, such as ``1_000.5``),
so every number written the usual way is a number, in spec files, in ``--set`` values, in sweep
files and grids, and in sampler options alike.

The loader also refuses what a spec never needs and would only hide a mistake:

* a key given twice in one mapping (PyYAML keeps the last one silently);
* ``!!binary`` values (PyYAML turns them into ``bytes``, which a spec field then shows as
  ``"b'hello'"``).

References
----------
1. YAML 1.2.2, section 10.3.2 "Tag Resolution" (core schema): https://yaml.org/spec/1.2.2/
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml

_FLOAT_1_2 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
"""YAML 1.2's float (``1e-3``, ``-2E5``, ``.5``, ``1.``) and the 1.1 forms PyYAML reads."""

FLOAT_TAG = "tag:yaml.org,2002:float"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice (``yaml.safe_load`` would keep the last silently)."""


class RefusedTagError(yaml.YAMLError):
    """A value with a tag a spec never holds (``!!binary``)."""


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """``yaml.SafeLoader`` (its C version when built): YAML 1.2 floats, unique keys, no binary."""

    yaml_implicit_resolvers: ClassVar[dict] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != FLOAT_TAG]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys may be overridden by the mapping's own keys
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    raise DuplicateKeyError(
                        f"line {line}: duplicate key {key!r} (first given on line {seen}); "
                        f"give each key once"
                    )
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_binary(self, node):
        raise RefusedTagError(
            f"line {node.start_mark.line + 1}: !!binary values are not accepted; "
            "write the value as plain text"
        )


_Loader.add_implicit_resolver(FLOAT_TAG, _FLOAT_1_2, list("-+0123456789."))
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader.construct_binary)


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely, reading ``1e-3`` as a number and refusing duplicate keys.

    Raises
    ------
    yaml.YAMLError
        For text that is not YAML, a key given twice (:class:`DuplicateKeyError`) or a
        ``!!binary`` value (:class:`RefusedTagError`).
    """
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
