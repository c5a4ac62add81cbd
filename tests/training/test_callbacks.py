"""hierot.training.callbacks: the hooks in order, callbacks as a registry with spec options,
built by build_callbacks with a path-like run directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from _fixtures import TRAIN_SPEC, train_spec  # tests/_fixtures.py

import hierot
from hierot.callbacks import Callback
from hierot.errors import SpecError
from hierot.registry import ComponentOptions, callbacks
from hierot.run import Run


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_start(self, spec, step):
        self.calls.append(("start", step))

    def on_log(self, step, metrics):
        self.calls.append(("log", step, sorted(metrics)))

    def on_eval(self, step, metrics):
        self.calls.append(("eval", step))

    def on_checkpoint(self, step, path):
        self.calls.append(("checkpoint", step, path.name))

    def on_train_end(self, result):
        self.calls.append(("end", result.steps))

    def close(self):
        self.calls.append(("close",))


def test_callback_hooks_in_order(tmp_path):
    recorder = Recorder()
    hierot.fit(train_spec("cpu", "train.steps=2", "train.checkpoint_every=2", "train.eval_every=2"),
               out=tmp_path / "r", callbacks=[recorder])
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["start", "log", "log", "eval", "checkpoint", "checkpoint", "end", "close"]
    assert {"rec_x", "w_rec_x", "total", "lr", "step_time", "epoch"} <= set(recorder.calls[1][2])
    assert [c[2] for c in recorder.calls if c[0] == "checkpoint"] == ["best.pt", "step-00000002.pt"]


def test_callbacks_are_a_registry_with_spec_options(tmp_path):
    seen = []

    class CountOptions(ComponentOptions):
        every: int = 1

    class Count(Callback):
        """Counts logged rows."""

        def __init__(self, options, *, run_dir, spec):
            self.options = options

        def on_log(self, step, metrics):
            seen.append(step)

    callbacks.add("count", Count, options=CountOptions)
    try:
        with pytest.raises(SpecError, match=r"callbacks\.0\.evry: Extra inputs"):
            hierot.load_spec(TRAIN_SPEC, ["callbacks=[{name: count, evry: 2}]"])
        with pytest.raises(SpecError, match=r"callbacks\.0.*'countt'"):
            hierot.load_spec(TRAIN_SPEC, ["callbacks=[{name: countt}]"])
        hierot.fit(train_spec("cpu", "train.steps=3", "callbacks=[{name: count, every: 2}]"),
                   out=tmp_path / "r")
        assert seen == [1, 2, 3]
    finally:
        callbacks.remove("count")
    assert {"tensorboard", "mlflow", "wandb"} <= set(callbacks.names())


def test_a_callback_factory_gets_a_path_like_run_dir(tmp_path):
    """``run_dir / "x.jsonl"`` is a Path in the run directory (issue 27, defect 10)."""
    import json
    import os

    class JsonlOptions(ComponentOptions):
        file: str = "totals.jsonl"

    class Jsonl(Callback):
        def __init__(self, options, *, run_dir, spec):
            self.path = run_dir / options.file
            self.where, self.spec = os.fspath(run_dir), spec

        def on_log(self, step, metrics):
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, "total": metrics["total"]}) + "\n")

    callbacks.add("jsonl", Jsonl, options=JsonlOptions)
    try:
        hierot.fit(train_spec("cpu", "train.steps=2", "callbacks=[{name: jsonl}]"),
                   out=tmp_path / "r")
    finally:
        callbacks.remove("jsonl")
    rows = [json.loads(line) for line in (tmp_path / "r" / "totals.jsonl").read_text().splitlines()]
    logged = Run(tmp_path / "r").read_metrics()
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["total"] for r in rows] == pytest.approx([r["total"] for r in logged])
    assert os.fspath(Run(tmp_path / "r")) == str(tmp_path / "r")


def test_build_callbacks_is_the_one_way_the_spec_callbacks_are_built(tmp_path):
    """``hierot.callbacks.build_callbacks`` is the function training uses; nothing else in the
    package builds an entry of the callbacks registry."""
    import hierot.callbacks
    from hierot.training.callbacks import build_callbacks

    class EveryOptions(ComponentOptions):
        every: int = 1

    class Every(Callback):
        def __init__(self, options, *, run_dir, spec):
            self.every, self.run_dir, self.spec = options.every, run_dir, spec

    callbacks.add("every", Every, options=EveryOptions)
    try:
        spec = train_spec("cpu", "callbacks=[{name: every, every: 3}, {name: every}]")
        built = build_callbacks(spec, Run(tmp_path))
    finally:
        callbacks.remove("every")
    assert [(type(c), c.every, c.run_dir.path, c.spec) for c in built] == [
        (Every, 3, tmp_path, spec), (Every, 1, tmp_path, spec)]
    assert hierot.callbacks.build_callbacks is build_callbacks
    root = Path(__file__).resolve().parents[2] / "hierot"
    builders = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                      if "callback_registry.build(" in p.read_text(encoding="utf-8")
                      or "callbacks.build(" in p.read_text(encoding="utf-8"))
    assert builders == ["training/callbacks.py"]
