"""MLflow: parameters, metrics and figures of a run in an MLflow tracking store.

``tracking_uri`` is any MLflow URI: a local SQLite store (``sqlite:///mlflow.db``), a file store
(``file:///path/mlruns``, deprecated by MLflow 3) or a tracking server (``http://host:5000``); by
default MLflow's own (``MLFLOW_TRACKING_URI``, else its local default). Flattened spec fields are
logged as parameters, each term as a metric at its step (``rec_x``, ``w_rec_x``, ``val_total``,
``lr``, ``step_time``), and at the end the figures of ``hierot plot`` as artifacts. The MLflow run
id is kept in ``RUN/trackers/mlflow.id``, so ``hierot train --resume`` logs into the same run.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from hierot.callbacks.base import Callback, figures, require_package, tracker_id_file
from hierot.registry import ComponentOptions, callbacks


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings and lists as ``a.b.0`` -> string (MLflow parameters)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) for v in value):
        items = enumerate(value)
    else:
        return {prefix: str(value)[:6000]}
    out: dict[str, str] = {}
    for key, inner in items:
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


class MLflowOptions(ComponentOptions):
    """Options of ``mlflow`` (:class:`MLflow`)."""

    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: MLflow's)")
    experiment: str = Field("hierot", description="experiment name (created if missing)")
    run_name: str | None = Field(None, description="default: the run directory's name")
    figures: bool = Field(True, description="log the figures of hierot plot when training ends")

    @model_validator(mode="after")
    def _installed(self) -> Any:
        require_package("mlflow", "mlflow")
        return self


@callbacks.register("mlflow", options=MLflowOptions)
class MLflow(Callback):
    """Spec as parameters, terms as metrics and figures as artifacts, in an MLflow run."""

    def __init__(self, options: MLflowOptions, *, run_dir, spec=None):
        self.options, self.run_dir = options, run_dir
        self.run_id: str | None = None

    def on_train_start(self, spec, step: int) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.options.tracking_uri)
        id_file = tracker_id_file(self.run_dir, "mlflow")
        if id_file.exists():
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(self.options.experiment)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(self.options.experiment))
        run = self.client.create_run(
            experiment_id, run_name=self.options.run_name or self.run_dir.path.name,
            tags={"hierot.run_dir": str(self.run_dir.path.resolve())},
        )
        self.run_id = run.info.run_id
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(self.run_id + "\n")
        from mlflow.entities import Param

        params = flatten(spec.model_dump(mode="json"))
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])

    def _metrics(self, step: int, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    on_log = _metrics
    on_eval = _metrics

    def on_train_end(self, result) -> None:
        if self.options.figures:
            for path in figures(self.run_dir):
                self.client.log_artifact(self.run_id, str(path), artifact_path="figures")
        self.client.set_terminated(self.run_id, status="FINISHED")
        self.run_id = None

    def close(self) -> None:
        if self.run_id is not None:  # stopped by an error or an interrupt
            self.client.set_terminated(self.run_id, status="KILLED")
            self.run_id = None
