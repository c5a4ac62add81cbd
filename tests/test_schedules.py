"""hierot.schedules: the learning-rate schedules' factors, their options, and a run's lr."""

from __future__ import annotations

import math

import pytest
from _fixtures import TRAIN_SPEC, train_spec  # tests/_fixtures.py

import hierot
from hierot.errors import SpecError
from hierot.registry import lr_schedules
from hierot.run import Run


def schedule(name: str, **options):
    """The built schedule ``name`` of the ``lr_schedules`` registry."""
    return lr_schedules.build(lr_schedules.make_options(name, **options))


def test_schedule_factors():
    warm = schedule("cosine", warmup_steps=4)
    assert [warm.factor(k, 14) for k in (1, 2, 4)] == [0.25, 0.5, 1.0]
    assert warm.factor(5, 14) == pytest.approx(1.0)  # first step after the warm-up
    assert warm.factor(14, 14) == pytest.approx(0.0, abs=1e-12)  # last step: min_factor
    assert warm.factor(9, 14) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 9)))
    assert schedule("linear", end_factor=0.5).factor(11, 11) == pytest.approx(0.5)
    assert schedule("linear").factor(6, 11) == pytest.approx(0.5)
    assert [schedule("step", every=2, gamma=0.5).factor(k, 10) for k in (1, 2, 3, 5)] == [
        1, 1, 0.5, 0.25]
    assert [schedule("step", milestones=(2, 4), gamma=0.1).factor(k, 10) for k in (2, 3, 5)] == [
        1, pytest.approx(0.1), pytest.approx(0.01)]
    assert schedule("constant", warmup_steps=2).factor(1, 5) == 0.5


def test_schedule_options_are_validated():
    with pytest.raises(SpecError, match=r"optimizer\.schedule: give exactly one of every"):
        hierot.load_spec(TRAIN_SPEC, ["optimizer.schedule={name: step}"])
    with pytest.raises(SpecError, match=r"optimizer\.schedule"):
        hierot.load_spec(TRAIN_SPEC, ["optimizer.schedule={name: cosinus}"])


def test_learning_rate_follows_the_schedule(tmp_path):
    hierot.fit(train_spec("cpu", "optimizer.schedule={name: linear, warmup_steps: 2}"),
               out=tmp_path / "r")
    lrs = [row["lr"] for row in Run(tmp_path / "r").read_metrics()]
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3, 2 / 3 * 1e-3, 1 / 3 * 1e-3, 0.0])
