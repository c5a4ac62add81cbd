"""hierot: hierarchical optimal-transport autoencoders (StackedWAE) as a plug-in framework.

>>> import hierot
>>> spec = hierot.load_spec("quickstart", ["train.steps=10"])
>>> result = hierot.fit(spec, out="runs/demo")  # doctest: +SKIP
"""

from hierot import _moved
from hierot.api import fit
from hierot.builder import Built, build
from hierot.errors import HierotError, SpecError
from hierot.spec.loading import load_spec
from hierot.spec.schema import Spec

_moved.install()

__version__ = "0.1.0"
__all__ = ["Built", "HierotError", "Spec", "SpecError", "build", "fit", "load_spec"]
