"""hierot.training.parts: what the trainer uses is built before it, and the trainer only trains."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

import hierot
from hierot.training.callbacks import Callback
from hierot.training.parts import build_training
from hierot.training.runtime import Runtime
from hierot.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "data": {"name": "digits"},
    "layers": [{"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
                "decoder": {"name": "mlp", "hidden": [8]}}],
    "optimizer": {"lr": 0.01, "schedule": {"name": "cosine", "warmup_steps": 2}},
    "train": {"batch_size": 16, "epochs": 2, "checkpoint_every": 4, "progress": False,
              "eval_every": 2, "ema": {"decay": 0.9}},
}


def test_the_parts_follow_the_spec():
    built = hierot.build(hierot.load_spec(SPEC))
    mark = Callback()
    parts = build_training(built, callbacks=[mark])
    assert parts.total_steps == 2 * parts.order.batches_per_epoch
    assert parts.scheduler.optimizer is parts.optimizer
    assert {id(p) for g in parts.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in parts.model.parameters()}
    assert parts.optimizer.param_groups[0]["lr"] == 0.01 / 2  # step 1 of a 2-step warm-up
    assert parts.ema is not None and parts.heldout is not None
    assert parts.trained is parts.objective  # one process: not wrapped
    assert parts.callbacks.callbacks == [mark]


def test_a_worker_process_gets_no_held_out_evaluation_and_no_callbacks():
    built = hierot.build(hierot.load_spec(SPEC))
    worker = Runtime(torch.device("cpu"), rank=1, world_size=2)
    parts = build_training(built, worker, callbacks=[Callback()])
    assert parts.heldout is None and not parts.callbacks


def test_a_trainer_given_parts_trains_them():
    short = {**SPEC, "train": {**SPEC["train"], "epochs": None, "steps": 4}}
    built = hierot.build(hierot.load_spec(short))
    parts = build_training(built)
    trainer = Trainer(parts)
    assert trainer.optimizer is parts.optimizer and trainer.model is parts.model
    before = [p.detach().clone() for p in parts.model.parameters()]
    assert trainer.fit().steps == parts.total_steps
    assert any(not torch.equal(a, p) for a, p in zip(before, parts.model.parameters()))


def test_the_trainer_builds_nothing():
    """No optimiser, schedule, precision, EMA, held-out evaluation or wrapping in trainer.py."""
    tree = ast.parse((ROOT / "hierot" / "training" / "trainer.py").read_text(encoding="utf-8"))
    called = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
              for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, (ast.Name, ast.Attribute))}
    builders = {"build_optimizer", "build_scheduler", "Precision", "WeightEMA", "UpdateGuard",
                "HeldOutEvaluation", "BestCheckpoint", "BatchOrder", "compile_networks", "wrap"}
    assert called & builders == set()
