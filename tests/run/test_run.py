"""hierot.run: one object owns the run directory, below training and evaluation.

``tests/data/run-0.2.0`` was written by ``hierot train`` at commit 96458a8 (before the run layer),
``train.steps=4``, ``checkpoint_every=2``, ``eval_every=2``, ``ema.decay=0.9``, on the ``digits``
set (its ``step-00000002.pt`` left out); it must still load, resume and evaluate.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from _fixtures import TRAIN_SPEC  # tests/_fixtures.py

import hierot
from hierot.errors import HierotError
from hierot.evaluation.trained import load_run
from hierot.run import CHECKPOINT_FORMAT, REQUIRED_KEYS, Run, layout

OLD_RUN = Path(__file__).resolve().parents[1] / "data" / "run-0.2.0"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def old_run(tmp_path) -> Path:
    copy = tmp_path / "old"
    shutil.copytree(OLD_RUN, copy)
    return copy


def test_a_checkpoint_written_before_the_run_layer_still_loads(old_run):
    state = Run(old_run).load_checkpoint()
    assert state["format"] == CHECKPOINT_FORMAT and state["step"] == 4
    assert set(REQUIRED_KEYS) <= set(state) and "ema" in state
    best = load_run(old_run, "best", weights="ema")
    assert best.weights == "ema" and best.step in (2, 4)


@pytest.fixture
def one_thread():
    """One torch thread, as ``tests/data/run-0.2.0`` was trained (its ``environment.json``):
    with another thread count the sums run in another order, and six steps of a tiny BatchNorm
    network carry that rounding to 1e-5."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_run_written_before_the_run_layer_resumes_as_if_never_stopped(old_run, tmp_path,
                                                                        one_thread):
    """Resumed to step 6, it matches a run of 6 steps trained straight by the current code."""
    assert json.loads((old_run / layout.ENVIRONMENT).read_text())["torch_threads"] == 1
    hierot.fit(resume=old_run, overrides=["train.steps=6", "device=cpu"])
    spec = Run(old_run).spec(["train.steps=6", "device=cpu"])
    straight = hierot.fit(spec, out=tmp_path / "straight").run_dir
    assert straight is not None
    resumed, fresh = Run(old_run).load_checkpoint(), straight.load_checkpoint()
    assert resumed["step"] == fresh["step"] == 6
    for name, tensor in fresh["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-4, atol=1e-6)
    steps = [int(r["step"]) for r in Run(old_run).read_metrics()]
    assert steps == [1, 2, 3, 4, 5, 6]
    (entry,) = Run(old_run).read_changes()
    assert entry["step"] == 4 and entry["changes"]["train.steps"] == [4, 6]


def test_create_writes_the_spec_environment_and_origin_it_names(tmp_path):
    spec = Run(OLD_RUN).spec()
    run = Run(tmp_path / "new")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / ".spec.yaml.abc123").write_text("a crash's temporary")
    run.create(spec, origin={"init_from": "elsewhere", "step": 3})
    assert hierot.load_spec(run.spec_file) == spec
    assert json.loads(run.environment_file.read_text())["packages"]["hierot"]
    assert json.loads(run.origin_file.read_text())["step"] == 3
    assert sorted(p.name for p in run.path.iterdir()) == [
        layout.CHECKPOINTS, layout.ENVIRONMENT, layout.ORIGIN, layout.SPEC]


def test_every_file_a_run_writes_atomically_has_its_temporary_removed():
    """A temporary of each file written with atomic_open is recognised (and only those)."""
    for name in (layout.SPEC, layout.METRICS, layout.SUMMARY, layout.ENVIRONMENT, layout.ORIGIN,
                 layout.EVAL, layout.REPORT, layout.BEST, layout.step_file(12)):
        assert layout.TEMPORARY.match(f".{name}.k2j3h4_x"), name
    for name in ("notes.txt", ".notes.txt.k2j3h4", layout.SPEC, f".{layout.CHANGES}.k2j3h4"):
        assert not layout.TEMPORARY.match(name), name


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_file_names_are_known_in_one_place():
    """No module of the package but ``_layout`` spells a run directory's file (``report.md`` is
    not checked: a sweep directory has one of its own)."""
    names = {layout.SPEC, layout.METRICS, layout.SUMMARY, layout.ENVIRONMENT, layout.CHANGES,
             layout.ORIGIN, layout.BEST, layout.EVAL, layout.HELDOUT}
    spelled = {str(p.relative_to(ROOT)): sorted(names & _string_constants(p))
               for p in sorted((ROOT / "hierot").rglob("*.py")) if p.name != "_layout.py"}
    assert {p: n for p, n in spelled.items() if n} == {}


def test_evaluation_reads_runs_through_the_run_layer_not_training():
    from test_architecture import import_graph

    graph = import_graph()
    borrowed = {(module, target) for module, edges in graph.items()
                if module.startswith("hierot.evaluation") for target, _ in edges
                if target.startswith("hierot.training")}
    assert borrowed == set()
    assert any(t.startswith("hierot.run") for t, _ in graph["hierot.evaluation.trained"])


def test_existing_run_is_not_overwritten(tmp_path):
    hierot.fit(TRAIN_SPEC, out=tmp_path / "run", overrides=["train.steps=1"])
    before = (tmp_path / "run" / "metrics.csv").read_text()
    with pytest.raises(HierotError, match="already holds a run"):
        hierot.fit(TRAIN_SPEC, out=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.csv").read_text() == before
