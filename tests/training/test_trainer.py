"""Training, the run directory, exact resume, non-finite stops and atomic checkpoints."""

from __future__ import annotations

import csv
import pickle

import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py

import hierot
from hierot.errors import HierotError, NonFiniteLossError
from hierot.registry import ComponentOptions, divergences
from hierot.run import Run, atomic_torch_save

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 4, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}


def weights(run: Run) -> dict[str, torch.Tensor]:
    return run.load_checkpoint()["model"]


def test_run_directory_contents(tmp_path):
    result = hierot.fit(TINY, out=tmp_path / "run")
    run = Run(tmp_path / "run")
    assert result.steps == 4
    assert hierot.load_spec(run.spec_file) == hierot.load_spec(TINY)
    rows = list(csv.DictReader(run.metrics_file.open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert {"rec_x", "rec_z1", "match_z2", "w_rec_x", "total", "wall_time"} <= set(rows[0])
    checkpoint = torch.load(run.checkpoint(), weights_only=True)  # plain tensors and numbers
    assert checkpoint["step"] == 4
    assert (run.path / "summary.json").is_file() and (run.path / "environment.json").is_file()


def test_resume_continues_exactly(tmp_path):
    hierot.fit(TINY, out=tmp_path / "straight")
    hierot.fit(TINY, out=tmp_path / "stopped", overrides=["train.steps=2"])
    hierot.fit(resume=tmp_path / "stopped", overrides=["train.steps=4"])
    straight, resumed = Run(tmp_path / "straight"), Run(tmp_path / "stopped")
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    steps = [row["step"] for row in resumed.read_metrics()]
    assert steps == [1, 2, 3, 4]
    assert (straight.read_metrics()[-1]["total"]
            == pytest.approx(resumed.read_metrics()[-1]["total"]))


def test_existing_run_is_not_overwritten(tmp_path):
    hierot.fit(TINY, out=tmp_path / "run", overrides=["train.steps=1"])
    before = (tmp_path / "run" / "metrics.csv").read_text()
    with pytest.raises(HierotError, match="already holds a run"):
        hierot.fit(TINY, out=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


@pytest.fixture
def nan_after_two_calls():
    class NaNLater:
        """Returns NaN from its third call."""

        calls = 0

        def __init__(self, options):
            pass

        def __call__(self, samples, prior_samples):
            NaNLater.calls += 1
            value = (samples.mean() - prior_samples.mean()) ** 2
            return value * float("nan") if NaNLater.calls >= 3 else value

    divergences.add("nan-later", NaNLater, options=ComponentOptions)
    yield
    divergences.remove("nan-later")


def test_non_finite_loss_stops_with_term_and_step_and_keeps_checkpoint(tmp_path,
                                                                       nan_after_two_calls):
    spec = hierot.load_spec(TINY, ["divergence={name: nan-later}", "train.checkpoint_every=1"])
    with pytest.raises(NonFiniteLossError,
                       match=r"step 3: non-finite objective term\(s\) match_z2"):
        hierot.fit(spec, out=tmp_path / "run")
    run = Run(tmp_path / "run")
    assert run.load_checkpoint()["step"] == 2
    assert all(torch.isfinite(v).all() for v in weights(run).values() if v.is_floating_point())


def test_atomic_checkpoint_survives_a_failed_write(tmp_path):
    path = tmp_path / "step-00000001.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise pickle.PicklingError("disk full, say")

    with pytest.raises(pickle.PicklingError):
        atomic_torch_save({"w": torch.zeros(3), "bad": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_training_reduces_reconstruction(tmp_path):
    spec = hierot.load_spec(TINY,
                            ["train.steps=150", "train.log_every=10", "train.checkpoint_every=150"])
    hierot.fit(spec, out=tmp_path / "run")
    rows = Run(tmp_path / "run").read_metrics()
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in rows)
    assert rows[-1]["rec_x"] < 0.6 * rows[0]["rec_x"]
    assert rows[-1]["rec_z1"] < rows[0]["rec_z1"]
