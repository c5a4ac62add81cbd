"""hierot.run's atomic writes: a failed write leaves the previous file and no temporary."""

from __future__ import annotations

import pickle

import pytest
import torch

from hierot.run import atomic_torch_save


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
