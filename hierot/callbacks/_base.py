"""What the built-in trackers share: package checks, tracker ids, and the figures logged at the
end. The hooks themselves are :class:`hierot.training.callbacks.Callback`; the spec's callbacks
are built by :func:`hierot.training.callbacks.build_callbacks` (exported by ``hierot.callbacks``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from hierot.training.callbacks import Callback, Callbacks

if TYPE_CHECKING:
    from hierot.run import Run


def require_package(module: str, extra: str) -> None:
    """Raise ``ValueError`` (a spec error at validation) when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"the {module} package is not installed; install it with "
            f"pip install 'hierot[{extra}]' (or pip install {module})"
        )


def tracker_id_file(run_dir: Run, tracker: str) -> Path:
    """Where a tracker keeps its run id, so that a resumed run logs into the same tracker run."""
    return run_dir.path / "trackers" / f"{tracker}.id"


def figures(run_dir: Run) -> list[Path]:
    """The figures of ``hierot plot`` for the run's last checkpoint (PCA embeddings: fast)."""
    from hierot.evaluation.figures import plot_run

    return plot_run(run_dir.path, embedding="pca")


__all__ = ["Callback", "Callbacks", "figures", "require_package", "tracker_id_file"]
