"""hierot.optimizers and builder.build_optimizer: the kernel an optimiser runs (fused,
foreach, for-loop), and that they train alike."""

from __future__ import annotations

import pytest
import torch
from _fixtures import train_spec  # tests/_fixtures.py

import hierot
from hierot.builder import build_optimizer
from hierot.errors import HierotError
from hierot.registry import optimizers
from hierot.training import Trainer


def OptimizerSpec(name: str = "adam", **options):
    return optimizers.make_options(name, **options)


def test_optimizer_implementation():
    params = [torch.nn.Parameter(torch.randn(3))]
    auto = build_optimizer(OptimizerSpec(), params)
    assert auto.defaults["fused"] is True  # Adam has a fused CPU kernel (torch >= 2.4)
    loop = build_optimizer(OptimizerSpec(implementation="for-loop"), params)
    assert not loop.defaults["fused"] and loop.defaults["foreach"] is False
    rms = build_optimizer(OptimizerSpec(name="rmsprop"), params)
    assert rms.defaults["foreach"] is True  # no fused RMSprop: foreach
    with pytest.raises(HierotError, match="optimizer.implementation: fused is not available"):
        build_optimizer(OptimizerSpec(name="rmsprop", implementation="fused"), params)


def test_fused_and_for_loop_adam_train_alike():
    runs = []
    for implementation in ("auto", "for-loop"):
        s = train_spec("cpu", f"optimizer.implementation={implementation}", "train.steps=5")
        trainer = Trainer(hierot.build(s))
        trainer.fit()
        runs.append(torch.cat([p.detach().flatten() for p in trainer.model.parameters()]))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)
