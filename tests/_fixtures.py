"""Plain data shared by several test files: the tiny digits hierarchy and run, a valid toy spec
and fake plug-in metadata.

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


TRAIN_SPEC = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 6, "log_every": 1, "checkpoint_every": 3,
              "progress": False},
}
"""The tiny digits run the training tests share: six steps, a row of metrics.csv each step,
checkpoints at steps 3 and 6. Read-only: :func:`train_spec` changes it."""


def train_spec(device: str = "cpu", *overrides: str):
    """:data:`TRAIN_SPEC` on ``device`` with ``overrides`` (``"a.b=value"``), validated."""
    import hierot

    return hierot.load_spec(TRAIN_SPEC, [f"device={device}", *overrides])


TOY_SPEC = {
    "data": {"name": "toy-hierarchy", "n_train": 64, "n_test": 16, "dims": [6, 3, 2]},
    "layers": [
        {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
    ],
    "train": {"batch_size": 16, "steps": 1, "progress": False},
}
"""A small valid spec (toy hierarchy, one step) that the user-error tests break one field of.
Treat it as read-only: ``dict(TOY_SPEC, ...)`` or a deep copy to change it."""


@dataclass
class FakeDist:
    """The distribution an entry point comes from (name and version are all hierot reads)."""

    name: str
    version: str
