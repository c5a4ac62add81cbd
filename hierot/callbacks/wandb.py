"""Weights & Biases: the spec as config, terms as metrics and figures as images.

``mode: offline`` (the default here) writes the run under ``RUN/wandb`` with no network;
``wandb sync RUN/wandb/offline-run-*`` uploads it later. ``mode: online`` logs live (after
``wandb login``); ``disabled`` turns it off. The W&B run id is kept in ``RUN/trackers/wandb.id``,
so ``hierot train --resume`` continues the same W&B run.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hierot.callbacks._base import Callback, figures, require_package, tracker_id_file
from hierot.registry import ComponentOptions, callbacks

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run


class WandBOptions(ComponentOptions):
    """Options of ``wandb`` (:class:`WandB`)."""

    mode: Literal["offline", "online", "disabled"] = Field(
        "offline", description="offline: write locally, sync later; online: log live"
    )
    project: str = Field("hierot", description="W&B project")
    entity: str | None = Field(None, description="W&B team or user (default: yours)")
    run_name: str | None = Field(None, description="default: the run directory's name")
    figures: bool = Field(True, description="log the figures of hierot plot when training ends")

    @model_validator(mode="after")
    def _installed(self) -> Any:
        require_package("wandb", "wandb")
        return self


@callbacks.register("wandb", options=WandBOptions)
class WandB(Callback):
    """Spec as config, terms as metrics (by step) and figures as images, in a W&B run."""

    def __init__(self, options: WandBOptions, *, run_dir, spec=None):
        self.options, self.run_dir = options, run_dir
        self.run: Run | None = None

    def on_train_start(self, spec, step: int) -> None:
        import wandb

        id_file = tracker_id_file(self.run_dir, "wandb")
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(
            project=self.options.project, entity=self.options.entity, id=run_id, resume="allow",
            name=self.options.run_name or self.run_dir.path.name, dir=str(self.run_dir.path),
            mode=self.options.mode, config=spec.model_dump(mode="json"),
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run.define_metric("*", step_metric="step")

    def _started(self) -> Run:
        """The W&B run, which :meth:`on_train_start` makes before any other hook is called."""
        assert self.run is not None, "on_train_start did not run"
        return self.run

    def _metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._started().log({**metrics, "step": step})

    on_log = _metrics
    on_eval = _metrics

    def on_train_end(self, result) -> None:
        if self.options.figures:
            import wandb

            images = {f"figures/{p.stem}": wandb.Image(str(p)) for p in figures(self.run_dir)}
            self._started().log({**images, "step": result.steps})
        self.close()

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
