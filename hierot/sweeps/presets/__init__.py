"""Built-in sweep presets: plain YAML sweep files shipped in this package, one file each.

A sweep preset's name is its file name without ``.yaml``; once published it is not edited (a
change is a new version, ``.v2``). Plug-ins add sweep presets through the ``hierot.sweeps``
entry-point group with a callable returning the YAML text. ``hierot list sweeps`` lists them.
"""

from __future__ import annotations

from functools import partial
from importlib.resources import files

import yaml

from hierot.registry import sweeps


def _read(name: str) -> str:
    """The YAML text of a built-in sweep preset."""
    return files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


for _resource in sorted(files(__name__).iterdir(), key=lambda r: r.name):
    if _resource.name.endswith(".yaml"):
        _name = _resource.name.removesuffix(".yaml")
        _reader = partial(_read, _name)
        _reader.__doc__ = yaml.safe_load(_read(_name)).get("description", "")
        sweeps.add(_name, _reader)
