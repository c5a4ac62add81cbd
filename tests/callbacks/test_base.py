"""hierot.callbacks: the built-in trackers are registered and listed; a tracker whose package
is missing is a spec error."""

from __future__ import annotations

import pytest
from _fixtures import TRAIN_SPEC  # tests/_fixtures.py

import hierot
from hierot.errors import SpecError


def test_missing_tracker_package_is_a_spec_error(monkeypatch):
    from hierot.callbacks import _base as base

    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(SpecError,
                       match=r"callbacks\.0: the mlflow package is not installed"
                             r".*pip install 'hierot\[mlflow\]'"):
        hierot.load_spec(TRAIN_SPEC, ["callbacks=[{name: mlflow}]"])


def test_cli_lists_callbacks(capsys):
    from hierot.cli import main

    assert main(["list", "callbacks"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("callbacks:")
    assert all(n in out for n in ("tensorboard", "mlflow", "wandb"))
