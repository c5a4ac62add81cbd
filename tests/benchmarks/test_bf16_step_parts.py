"""benchmarks/bf16_step_parts.py: each timing arm removes the pass it names, and only it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's `benchmarks`

import hierot
from benchmarks.bf16_step_parts import without
from hierot.training.runtime import single_process
from hierot.training.trainer import Trainer

TINY = {"data": {"name": "digits"}, "layers": two_layers(),
        "train": {"batch_size": 64, "steps": 6, "progress": False, "precision": "bf16"}}


def snapshot(t: Trainer) -> dict[str, list[torch.Tensor]]:
    c = t.copies
    assert c is not None
    return {"masters": [p.detach().clone() for p in c.masters],
            "copies": [x.detach().clone() for x in c.copies],
            "widened": [c.grads[i].clone() for i in sorted(c.low)],
            "products": [c.low[i].clone() for i in sorted(c.low)]}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not all(torch.equal(a, b) for a, b in zip(before[k], after[k]))}


@pytest.mark.parametrize(("passes", "untouched"), [
    ((), set()),
    (("refresh",), {"copies"}),
    (("widening",), {"widened"}),
    (("adam",), {"masters"}),  # the copies still take the last update, refreshed here
    (("refresh", "widening", "norm"), {"copies", "widened"}),
])
def test_an_arm_skips_the_passes_it_names_and_runs_the_others(passes, untouched):
    torch.manual_seed(0)
    t = Trainer(hierot.build(hierot.load_spec(TINY)), None, single_process("cpu"))
    for _ in range(2):  # the buffers a removed pass writes hold values, the copies are stale
        t._train_step()
    without(t, passes)
    before = snapshot(t)
    values = t._train_step()
    assert values is not None
    assert changed(before, snapshot(t)) == {"masters", "copies", "widened", "products"} - untouched
    norm = float(values["grad_norm"])
    assert (norm == 0.0) == ("norm" in passes)
