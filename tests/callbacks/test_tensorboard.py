"""The tensorboard tracker: scalars equal to metrics.csv, held-out scalars, figures."""

from __future__ import annotations

import pytest
from _fixtures import train_spec  # tests/_fixtures.py

import hierot
from hierot.run import Run


def test_tensorboard_writes_scalars_and_figures(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    hierot.fit(train_spec("cpu", "train.eval_every=3", "callbacks=[{name: tensorboard}]"),
               out=tmp_path / "r")
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"unweighted/rec_x", "weighted/rec_x", "total", "lr", "step_time",
            "val_unweighted/rec_x", "val_total"} <= scalars
    rec_x = [e.value for e in events.Scalars("unweighted/rec_x")]
    logged = [r["rec_x"] for r in Run(tmp_path / "r").read_metrics()]
    assert rec_x == pytest.approx(logged)
    assert [e.step for e in events.Scalars("val_total")] == [3, 6]
    assert "figures/samples" in events.Tags()["images"]
