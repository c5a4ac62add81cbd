"""The mlflow tracker: params and metrics of a run and its resume in one MLflow run; its
faults (an unknown URI scheme, an unreachable or silent server)."""

from __future__ import annotations

import socket
import time

import pytest
from _fixtures import train_spec, two_layers  # tests/_fixtures.py

import hierot
from hierot.cli import main
from hierot.errors import HierotError, SpecError
from hierot.run import Run
from hierot.spec.loading import dump_spec

pytest.importorskip("mlflow")

TINY = {
    "data": {"name": "digits"}, "layers": two_layers(), "device": "cpu",
    "train": {"batch_size": 64, "steps": 2, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}


def tracker(uri: str, **options) -> str:
    more = "".join(f", {k}: {v}" for k, v in options.items())
    return f"callbacks=[{{name: mlflow, tracking_uri: '{uri}', figures: false{more}}}]"


def test_an_unknown_scheme_is_refused_at_validation(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(dump_spec(hierot.load_spec(TINY)))
    assert main(["validate", str(path), "--set", tracker("nosuch://x")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("callbacks.0.tracking_uri: no MLflow tracking store takes the scheme of "
            "'nosuch://x'") in err
    assert "http://" in err and "sqlite://" in err


@pytest.mark.parametrize("uri", ["sqlite:///m.db", "postgresql+psycopg2://h/db", "/tmp/mlruns",
                                 "file:///tmp/mlruns", "http://h:5000"])
def test_usual_uris_pass_validation(uri):
    assert hierot.load_spec(TINY, [tracker(uri)]).callbacks[0].tracking_uri == uri


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung tracking server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def start(uri: str, tmp_path, **options):
    from hierot.registry import callbacks

    spec = hierot.load_spec(TINY, [tracker(uri, **options)])
    callback = callbacks.build(spec.callbacks[0], run_dir=Run(tmp_path / "r"), spec=spec)
    callback.on_train_start(spec, 0)
    return callback


def test_a_silent_server_fails_within_the_timeout(tmp_path, silent_server):
    with pytest.raises(HierotError, match=rf"{silent_server} could not be reached within 1 s .*"
                                          r"unreachable: skip") as caught:
        start(silent_server, tmp_path, connect_timeout=1)
    assert "timed out" in str(caught.value)
    began = time.monotonic()
    with pytest.raises(HierotError):
        start(silent_server, tmp_path, connect_timeout=1)
    # mlflow imported: one second of waiting, not MLflow's minutes of retries
    assert time.monotonic() - began < 5


def test_an_unreachable_server_is_skipped_with_a_warning_when_asked(tmp_path):
    run = tmp_path / "r"
    with pytest.warns(RuntimeWarning,
                      match=r"127.0.0.1:1 could not be reached.*training without MLflow"):
        hierot.fit(hierot.load_spec(TINY, [tracker("http://127.0.0.1:1", unreachable="skip",
                                                   connect_timeout=2)]), out=run)
    assert len(Run(run).read_metrics()) == 2
    assert not (run / "trackers" / "mlflow.id").exists()


def test_a_refused_connection_stops_the_run_cleanly(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(dump_spec(hierot.load_spec(TINY)))
    status = main(["train", str(path), "--out", str(tmp_path / "r"),
                   "--set", tracker("http://127.0.0.1:1", connect_timeout=2)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "callbacks mlflow: the tracking server http://127.0.0.1:1 could not be reached" in err
    with pytest.raises(SpecError):
        hierot.load_spec(TINY, [tracker("http://h", connect_timeout=0)])


def test_mlflow_logs_params_metrics_and_resumes_the_same_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = f"callbacks=[{{name: mlflow, tracking_uri: '{uri}', figures: false}}]"
    run = tmp_path / "r"
    hierot.fit(train_spec("cpu", tracker, "train.steps=3", "train.checkpoint_every=3"), out=run)
    hierot.fit(resume=run, overrides=["train.steps=4", "train.eval_every=4"])
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("hierot").experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "r"
    assert found.data.params["train.batch_size"] == "64"
    history = client.get_metric_history(found.info.run_id, "w_rec_x")
    assert [m.step for m in history] == [1, 2, 3, 4]
    logged = [row["w_rec_x"] for row in Run(run).read_metrics()]
    assert [m.value for m in history] == pytest.approx(logged)
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val_total")] == [4]
