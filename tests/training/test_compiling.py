"""hierot.training.compiling: train.compile without a C compiler is a clean error."""

from __future__ import annotations

import pytest
from _fixtures import train_spec  # tests/_fixtures.py

import hierot
from hierot.errors import HierotError
from hierot.training import Trainer


def test_compile_without_a_compiler_is_a_clean_error(monkeypatch):
    from hierot.training import compiling

    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    with pytest.raises(HierotError, match="train.compile: torch.compile on the CPU needs a C"):
        Trainer(hierot.build(train_spec("cpu", "train.compile=true")))
