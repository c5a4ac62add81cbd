"""hierot.training.trainer: the loop writes its run directory, resumes exactly (schedule,
clipping and held-out evaluation too), stops on a non-finite loss, and learns."""

from __future__ import annotations

import csv

import pytest
import torch
from _fixtures import train_spec, two_layers  # tests/_fixtures.py

import hierot
from hierot.callbacks import Callback
from hierot.errors import NonFiniteLossError
from hierot.registry import ComponentOptions, divergences
from hierot.run import Run

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 4, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}
SCHEDULED = [
    "optimizer.schedule={name: cosine, warmup_steps: 2, min_factor: 0.1}",
    "optimizer.clip_grad_norm=0.5",
    "train.eval_every=2",
]


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


class StopAt(Callback):
    """Interrupts training after the checkpoint of ``step``, as Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def on_checkpoint(self, step, path):
        if step == self.step and path.name.startswith("step-"):
            raise KeyboardInterrupt


def test_schedule_clipping_and_evaluation_resume_exactly(tmp_path, device):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    hierot.fit(train_spec(device, *SCHEDULED), out=straight)
    with pytest.raises(KeyboardInterrupt):
        hierot.fit(train_spec(device, *SCHEDULED), out=stopped, callbacks=[StopAt(3)])
    assert Run(stopped).load_checkpoint()["step"] == 3
    hierot.fit(resume=stopped)
    a, b = weights(Run(straight)), weights(Run(stopped))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    sa, sb = Run(straight).load_checkpoint(), Run(stopped).load_checkpoint()
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 6
    assert sa["best"] == sb["best"]
    rows_a, rows_b = Run(straight).read_metrics(), Run(stopped).read_metrics()
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    for key in ("lr", "total", "val_total"):
        assert [r.get(key) for r in rows_a] == pytest.approx([r.get(key) for r in rows_b])


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


def test_training_reduces_reconstruction(tmp_path):
    spec = hierot.load_spec(TINY,
                            ["train.steps=150", "train.log_every=10", "train.checkpoint_every=150"])
    hierot.fit(spec, out=tmp_path / "run")
    rows = Run(tmp_path / "run").read_metrics()
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in rows)
    assert rows[-1]["rec_x"] < 0.6 * rows[0]["rec_x"]
    assert rows[-1]["rec_z1"] < rows[0]["rec_z1"]
