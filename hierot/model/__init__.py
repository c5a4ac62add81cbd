"""The model: the Markovian hierarchy of encoders and decoders, and the Gaussians they output.

================= =================================================================================
``distributions`` :class:`Gaussian` (diagonal; ``log_var=None`` is a point mass), what every layer
                  network returns
``hierarchy``     :class:`Hierarchy`: ``encode``, ``decode``, ``ancestral_sample``, ``generate``
================= =================================================================================
"""

from hierot.model.distributions import Gaussian
from hierot.model.hierarchy import Hierarchy

__all__ = ["Gaussian", "Hierarchy"]
