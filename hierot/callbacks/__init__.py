"""Built-in callbacks: experiment trackers. Importing registers them.

========================= ==========================================================
``tensorboard``           event files in ``RUN/tensorboard`` (``pip install 'hierot[tensorboard]'``)
``mlflow``                an MLflow run in any tracking store (``pip install 'hierot[mlflow]'``)
``wandb``                 a W&B run, offline by default (``pip install 'hierot[wandb]'``)
========================= ==========================================================

The hooks are those of :class:`hierot.training.callbacks.Callback`; :func:`build_callbacks` (the
one the trainer uses) builds a spec's callbacks. Plug-ins register more under
the entry-point group ``hierot.callbacks``.
"""

from hierot.callbacks import mlflow, tensorboard, wandb  # noqa: F401  (registers them)
from hierot.training.callbacks import Callback, Callbacks, build_callbacks

__all__ = ["Callback", "Callbacks", "build_callbacks"]
