"""Built-in latent divergences D(Q, P); importing this package registers them.

``mmd`` (the paper's choice for the top latent), ``sinkhorn``, ``wasserstein`` and
``sliced-wasserstein``. See ``docs/divergences.md`` for how to choose.
"""

from hierot.divergences import mmd, sinkhorn, wasserstein  # noqa: F401
from hierot.divergences.mmd import MMD
from hierot.divergences.sinkhorn import Sinkhorn
from hierot.divergences.wasserstein import SlicedWasserstein, Wasserstein

__all__ = ["MMD", "Sinkhorn", "SlicedWasserstein", "Wasserstein"]
