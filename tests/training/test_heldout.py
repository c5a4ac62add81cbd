"""hierot.training.heldout: train.eval_every logs the val_* terms, keeps best.pt, changes
nothing in training, and names the valid best_metric values."""

from __future__ import annotations

import csv

import pytest
import torch
from _fixtures import train_spec  # tests/_fixtures.py

import hierot
from hierot.errors import HierotError
from hierot.run import Run


def test_evaluation_logs_val_terms_and_keeps_best_checkpoint(tmp_path):
    hierot.fit(train_spec("cpu", "train.eval_every=2", "train.log_every=3"), out=tmp_path / "r")
    run = Run(tmp_path / "r")
    with run.metrics_file.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6]  # logged at evaluations too
    assert [r["val_total"] != "" for r in rows] == [True, False, True, True]
    assert {"val_rec_x", "val_w_rec_x", "val_match_z2", "lr", "step_time"} <= set(rows[0])
    best = torch.load(run.checkpoint_dir / "best.pt", weights_only=True)
    values = {int(r["step"]): float(r["val_total"]) for r in rows if r["val_total"]}
    assert best["step"] == min(values, key=values.get)
    assert best["best"]["value"] == pytest.approx(min(values.values()))
    assert [p.name for p in run.checkpoints()] == ["step-00000003.pt", "step-00000006.pt"]


def test_evaluation_does_not_change_training(tmp_path):
    hierot.fit(train_spec("cpu"), out=tmp_path / "plain")
    hierot.fit(train_spec("cpu", "train.eval_every=1"), out=tmp_path / "evaluated")
    a = Run(tmp_path / "plain").load_checkpoint()["model"]
    b = Run(tmp_path / "evaluated").load_checkpoint()["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_unknown_best_metric_lists_the_valid_ones(tmp_path):
    with pytest.raises(HierotError, match=r"train.best_metric: 'val_nope'.*val_rec_x"):
        hierot.fit(train_spec("cpu", "train.eval_every=2", "train.best_metric=val_nope"),
                   out=tmp_path / "r")
