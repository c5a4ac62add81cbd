"""Built-in presets: plain YAML specs shipped in this package, one file each.

A preset's name is its file name without ``.yaml``. A published preset is never edited: a change
is a new version (``mnist-stackedwae.v2``). Plug-ins add presets through the ``hierot.presets``
entry-point group with a callable returning the YAML text.
"""

from hierot.registry import presets

presets.add_yaml_files(__name__)

__all__: list[str] = []  # a package of YAML files: nothing to import
