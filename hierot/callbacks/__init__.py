"""Built-in callbacks: experiment trackers. Importing registers them.

========================= ==========================================================
``tensorboard``           event files in ``RUN/tensorboard`` (``pip install 'hierot[tensorboard]'``)
``mlflow``                an MLflow run in any tracking store (``pip install 'hierot[mlflow]'``)
``wandb``                 a W&B run, offline by default (``pip install 'hierot[wandb]'``)
========================= ==========================================================

The hooks are those of :class:`hierot.training.callbacks.Callback`. Plug-ins register more under
the entry-point group ``hierot.callbacks``.
"""

from hierot.callbacks import mlflow, tensorboard, wandb  # noqa: F401  (registers them)
from hierot.callbacks._base import build_callbacks
from hierot.training.callbacks import Callback, Callbacks

__all__ = ["Callback", "Callbacks", "build_callbacks"]
