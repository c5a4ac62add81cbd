"""Plain data shared by several test files: the tiny digits hierarchy and fake plug-in metadata.

Imported as ``from _fixtures import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

_TWO_LAYERS = [
    {"latent_shape": [8], "encoder": {"name": "mlp", "hidden": [32]},
     "decoder": {"name": "mlp", "hidden": [32], "output": "sigmoid"},
     "decoder_head": "deterministic"},
    {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [16]},
     "decoder": {"name": "mlp", "hidden": [16]}},
]


def two_layers() -> list[dict]:
    """A fresh copy of the two-layer hierarchy (8-D then 2-D latents, narrow MLPs) on 8x8 digits
    that the quick training tests share."""
    return copy.deepcopy(_TWO_LAYERS)


@dataclass
class FakeDist:
    """The distribution an entry point comes from (name and version are all hierot reads)."""

    name: str
    version: str
