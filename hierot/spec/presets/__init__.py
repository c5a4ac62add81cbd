"""Built-in presets: plain YAML specs shipped in this package, one file each.

A preset's name is its file name without ``.yaml``. A published preset is never edited: a change
is a new version (``mnist-stackedwae.v2``). Plug-ins add presets through the ``hierot.presets``
entry-point group with a callable returning the YAML text.
"""

from __future__ import annotations

from functools import partial
from importlib.resources import files

import yaml

from hierot.registry import presets


def _read(name: str) -> str:
    """The YAML text of a built-in preset."""
    return files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


for _resource in sorted(files(__name__).iterdir(), key=lambda r: r.name):
    if _resource.name.endswith(".yaml"):
        _name = _resource.name.removesuffix(".yaml")
        _reader = partial(_read, _name)
        _reader.__doc__ = yaml.safe_load(_read(_name)).get("description", "")
        presets.add(_name, _reader)
