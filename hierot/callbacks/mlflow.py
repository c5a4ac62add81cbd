"""MLflow: parameters, metrics and figures of a run in an MLflow tracking store.

``tracking_uri`` is any MLflow URI: a local SQLite store (``sqlite:///mlflow.db``), a file store
(``file:///path/mlruns``, deprecated by MLflow 3) or a tracking server (``http://host:5000``); by
default MLflow's own (``MLFLOW_TRACKING_URI``, else its local default). Flattened spec fields are
logged as parameters, each term as a metric at its step (``rec_x``, ``w_rec_x``, ``val_total``,
``lr``, ``step_time``), and at the end the figures of ``hierot plot`` as artifacts. The MLflow run
id is kept in ``RUN/trackers/mlflow.id``, so ``hierot train --resume`` logs into the same run.

A ``tracking_uri`` whose scheme no MLflow tracking store takes (``nosuch://x``) is refused when the
spec is validated. A tracking server (``http``/``https``) is asked for ``/health`` before training
starts, waiting at most ``connect_timeout`` seconds (default 10): one that does not answer stops
the run with an error naming the URI (``unreachable: fail``, the default) or is left out with a
warning (``unreachable: skip``), instead of MLflow's own retries, which wait minutes in silence.
Artifacts (the figures) go where the tracking store puts them: for a local store without an
artifact location, MLflow's default ``./mlruns`` under the current directory.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from hierot.callbacks._base import Callback, figures, require_package, tracker_id_file
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, callbacks


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings and lists as ``a.b.0`` -> string (MLflow parameters)."""
    items: Iterable[tuple[Any, Any]]
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
    connect_timeout: float = Field(
        10.0, gt=0, le=600, description="seconds to wait for a tracking server before training")
    unreachable: Literal["fail", "skip"] = Field(
        "fail", description="a tracking server that does not answer: stop, or train without it")

    @field_validator("tracking_uri")
    @classmethod
    def _known_scheme(cls, uri: str | None) -> str | None:
        if uri is not None and not _scheme_known(uri):
            raise ValueError(
                f"no MLflow tracking store takes the scheme of {uri!r}; use one of "
                f"{', '.join(s + '://' for s in KNOWN_SCHEMES if s)} or a local path"
            )
        return uri

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
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = self.options.tracking_uri or mlflow.get_tracking_uri()
        problem = server_problem(uri, self.options.connect_timeout)
        if problem is not None:
            message = (f"callbacks mlflow: the tracking server {uri} could not be reached within "
                       f"{self.options.connect_timeout:g} s ({problem})")
            if self.options.unreachable == "fail":
                raise HierotError(f"{message}; start it, fix tracking_uri, or set "
                                  f"unreachable: skip to train without it")
            warnings.warn(f"{message}; training without MLflow (unreachable: skip)",
                          RuntimeWarning, stacklevel=2)
            self.skipped = True
            return
        self.client = MlflowClient(tracking_uri=uri)
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

    skipped = False
    """Whether the tracking server was unreachable and ``unreachable: skip`` left it out."""

    def _run(self) -> str:
        """The run's id, which :meth:`on_train_start` sets before any other hook is called."""
        assert self.run_id is not None, "on_train_start did not run"
        return self.run_id

    def _metrics(self, step: int, metrics: dict[str, float]) -> None:
        if self.skipped:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self._run(), metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    on_log = _metrics
    on_eval = _metrics

    def on_train_end(self, result) -> None:
        if self.skipped:
            return
        if self.options.figures:
            for path in figures(self.run_dir):
                self.client.log_artifact(self._run(), str(path), artifact_path="figures")
        self.client.set_terminated(self._run(), status="FINISHED")
        self.run_id = None

    def close(self) -> None:
        if self.run_id is not None:  # stopped by an error or an interrupt
            self.client.set_terminated(self.run_id, status="KILLED")
            self.run_id = None


KNOWN_SCHEMES = ("", "file", "http", "https", "databricks", "databricks-uc", "uc", "sqlite",
                 "postgresql", "mysql", "mssql")
"""The URI schemes of MLflow's built-in tracking stores (``postgresql+psycopg2`` counts as
``postgresql``); others are asked of MLflow's store registry (plug-in stores)."""


def _scheme_known(uri: str) -> bool:
    scheme = urlparse(uri).scheme.partition("+")[0].lower()
    if scheme in KNOWN_SCHEMES or len(scheme) == 1:  # one letter: a Windows drive (C:\\runs)
        return True
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:  # another MLflow layout: let MLflow judge it when training starts
        return True
    try:
        _tracking_store_registry.get_store_builder(uri)
    except Exception:  # noqa: BLE001 - MLflow raises several kinds for an unknown scheme
        return False
    return True


def server_problem(uri: str, timeout: float) -> str | None:
    """Why the tracking server at ``uri`` cannot be reached within ``timeout`` seconds, or
    ``None`` when it answers (any HTTP status) or ``uri`` is not a server (a file, a database)."""
    if urlparse(uri).scheme not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason) or type(reason).__name__
