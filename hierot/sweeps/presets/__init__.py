"""Built-in sweep presets: plain YAML sweep files shipped in this package, one file each.

A sweep preset's name is its file name without ``.yaml``; once published it is not edited (a
change is a new version, ``.v2``). Plug-ins add sweep presets through the ``hierot.sweeps``
entry-point group with a callable returning the YAML text. ``hierot list sweeps`` lists them.
"""

from hierot.registry import sweeps

sweeps.add_yaml_files(__name__)

__all__: list[str] = []  # a package of YAML files: nothing to import
