"""hierot.spec._checks: ``validate`` refuses what ``train`` would refuse later (issue 27,
defect 8)."""

from __future__ import annotations

import warnings

import pytest
from _fixtures import two_layers  # tests/_fixtures.py

from hierot.cli import main
from hierot.errors import SpecError
from hierot.spec.loading import load_spec

DIGITS = {"data": {"name": "digits"}, "layers": two_layers(), "device": "cpu",
          "train": {"batch_size": 64, "steps": 10, "progress": False}}
TOY = {"data": {"name": "toy-hierarchy", "n_train": 50, "n_test": 10, "dims": [6, 3, 2]},
       "layers": [{"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [8]},
                   "decoder": {"name": "mlp", "hidden": [8]}},
                  {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
                   "decoder": {"name": "mlp", "hidden": [8]}}],
       "train": {"batch_size": 16, "steps": 10, "progress": False}}


@pytest.mark.parametrize("spec, overrides, line", [
    (DIGITS, ["train.batch_size=1501"],
     "train.batch_size: 1501 is larger than the 1500 training examples of data set 'digits'"),
    (DIGITS, ["data.limit=100", "train.batch_size=128"],
     "train.batch_size: 128 is larger than the 100 training examples"),
    (DIGITS, ["data.test_size=1297", "train.batch_size=501"], "larger than the 500 training"),
    (TOY, ["train.batch_size=51"], "train.batch_size: 51 is larger than the 50 training examples"),
    ("quickstart", ["train.batch_size=4501"], "larger than the 4500 training examples"),
    (DIGITS, ["train.precision=fp16"], "train.precision: fp16 needs CUDA"),
    (DIGITS, ["train.precision=fp16", "device=mps"], "the spec's device is mps"),
    (DIGITS, ["train.best_metric=rec_x"],
     "train.best_metric: 'rec_x' is not a held-out metric; those are val_total and val_<term>"),
])
def test_what_train_refuses_validate_refuses(capsys, tmp_path, spec, overrides, line):
    with pytest.raises(SpecError) as caught:
        load_spec(spec, overrides)
    assert any(line in got for got in caught.value.lines)
    if spec == "quickstart":
        args = ["validate", "quickstart", *(a for o in overrides for a in ("--set", o))]
        assert main(args) == 2
        assert line in capsys.readouterr().err


@pytest.mark.parametrize("spec, overrides", [
    (DIGITS, ["train.batch_size=1500"]), (TOY, ["train.batch_size=50"]),
    (DIGITS, ["train.precision=fp16", "device=cuda"]), (DIGITS, ["train.best_metric=val_rec_x"]),
    (DIGITS, ["train.precision=bf16"]),
])
def test_what_train_accepts_validate_accepts(spec, overrides):
    load_spec(spec, overrides)


def test_a_warmup_longer_than_the_run_warns():
    with pytest.warns(UserWarning, match=r"warm-up of 40 steps is longer than the run's 10 steps.*"
                                         r"peaks at 0.25 of it"):
        load_spec(DIGITS, ["optimizer.schedule={name: cosine, warmup_steps: 40}"])
    with pytest.warns(UserWarning, match=r"longer than the run's 23 steps"):  # 1 epoch of 1500/64
        load_spec(DIGITS, ["train.steps=null", "train.epochs=1",
                           "optimizer.schedule={name: linear, warmup_steps: 24}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_spec(DIGITS, ["optimizer.schedule={name: cosine, warmup_steps: 10}"])
