"""Built-in layer networks; importing this package registers them."""

from hierot.networks import (
    mlp,  # noqa: F401
    resnet,  # noqa: F401
)
from hierot.networks._heads import GaussianHead, numel

__all__ = ["GaussianHead", "numel"]
