"""Old module paths of hierot 0.1, kept importable after the package was grouped.

``import hierot.trainer`` (say) still works: a finder on :data:`sys.meta_path` answers each old
name with the module at its new path (the same module object, so ``hierot.trainer.Trainer is
hierot.training.trainer.Trainer``) and emits a :class:`DeprecationWarning` naming the new path.
New code imports the new paths; see ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED: dict[str, str] = {
    "hierot.loading": "hierot.spec.loading",
    "hierot.presets": "hierot.spec.presets",
    "hierot.trainer": "hierot.training.trainer",
    "hierot.batches": "hierot.training.batches",
    "hierot.rundir": "hierot.training.rundir",
    "hierot.runtime": "hierot.training.runtime",
    "hierot.distributed": "hierot.training.distributed",
    "hierot.evaluation.run": "hierot.evaluation.trained",
    "hierot.evaluation._draw": "hierot.evaluation.plotting",
    "hierot.evaluation.commands": "hierot.cli.evaluation",
    "hierot.divergences._common": "hierot.divergences.helpers",
}
"""Old module path -> new module path."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path of :data:`MOVED` and loads it as the module at the new path."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def __init__(self) -> None:
        self._specs: dict[str, ModuleSpec] = {}

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2
        )
        module = importlib.import_module(new)
        self._specs[new] = module.__spec__  # the import system overwrites it with ``spec``
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module at the new path is already executed); give it back its
        own spec, which resources (``importlib.resources.files``) and pickling rely on."""
        module.__spec__ = self._specs.pop(module.__name__)


def install() -> None:
    """Put the finder first on :data:`sys.meta_path` (once), so an old path always names the
    new module, even where a stale file or another installation still holds the old one."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
