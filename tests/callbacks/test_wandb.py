"""The wandb tracker, offline: its transaction log holds the logged rows of metrics.csv."""

from __future__ import annotations

import time

import pytest
from _fixtures import train_spec  # tests/_fixtures.py

import hierot
from hierot.run import Run


def wandb_records(path):
    """The records of a W&B transaction log (``run-*.wandb``): a 7-byte header, then the LevelDB
    log format in 32 KiB blocks, each record a 7-byte header (CRC, length, type) and data."""
    data, pos, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block trailer
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield payload
        elif kind in (2, 3):
            pending = (b"" if kind == 2 else pending) + payload
        elif kind == 4:
            yield pending + payload


def test_wandb_offline_run(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "r"
    hierot.fit(train_spec("cpu", "train.steps=3", "callbacks=[{name: wandb, figures: false}]"),
               out=run)
    (offline,) = (run / "wandb").glob("offline-run-*")
    run_id = (run / "trackers" / "wandb.id").read_text().strip()
    assert offline.name.endswith(run_id)
    (records,) = offline.glob("run-*.wandb")
    from wandb.proto import wandb_internal_pb2

    def parsed():
        for data in wandb_records(records):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            yield record

    # wandb's service process writes the log asynchronously: wait for its exit record
    deadline = time.monotonic() + 60
    while not any(r.WhichOneof("record_type") == "exit" for r in parsed()):
        assert time.monotonic() < deadline, "the W&B log has no exit record after 60 s"
        time.sleep(0.2)
    history = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
               for r in parsed() if r.WhichOneof("record_type") == "history"]
    steps = [int(h["step"]) for h in history if "rec_x" in h]
    assert steps == [1, 2, 3], (steps, history, wandb.__version__)
    logged = [row["rec_x"] for row in Run(run).read_metrics()]
    assert [float(h["rec_x"]) for h in history if "rec_x" in h] == pytest.approx(logged)
