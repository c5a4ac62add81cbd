"""train.skip_update and the logged gradient norm (hierot/training/updates.py): a bad batch is
skipped and training goes on exactly as if that batch's update had never been taken."""

from __future__ import annotations

import warnings
from typing import ClassVar

import pytest
import torch
from _fixtures import train_spec, two_layers  # tests/_fixtures.py

import hierot
from hierot.cli import main
from hierot.errors import NonFiniteLossError, SpecError
from hierot.registry import ComponentOptions, divergences
from hierot.run import Run
from hierot.training.callbacks import Callback
from hierot.training.runtime import single_process
from hierot.training.trainer import Trainer

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 6, "log_every": 1, "checkpoint_every": 100,
              "progress": False},
}


class BadAt:
    """The squared mean difference, NaN on the calls listed in ``bad`` (a bad batch)."""

    bad: ClassVar[set[int]] = set()
    calls = 0

    def __init__(self, options):
        pass

    def __call__(self, samples, prior_samples):
        BadAt.calls += 1
        value = (samples.mean() - prior_samples.mean()) ** 2
        return value * float("nan") if BadAt.calls in BadAt.bad else value


@pytest.fixture
def bad_at():
    """``bad_at(*calls)``: the divergence ``bad-at`` turns NaN on those calls (counting anew)."""

    def arm(*calls: int) -> None:
        BadAt.bad, BadAt.calls = set(calls), 0

    divergences.add("bad-at", BadAt, options=ComponentOptions)
    yield arm
    divergences.remove("bad-at")


class Logged(Callback):
    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_log(self, step, metrics):
        self.rows.append({"step": step, **metrics})


def spec_with(*overrides: str):
    return hierot.load_spec(TINY, ["divergence={name: bad-at}", *overrides])


def reference(spec, skipped: set[int], clip: float | None = None) -> tuple[Trainer, list[float]]:
    """The loop written out by hand: every step draws its batch and runs the objective (so the
    data order and the random streams advance), and steps in ``skipped`` take no update and
    leave the buffers as they were."""
    trainer = Trainer(hierot.build(spec), None, single_process("cpu"))
    params = list(trainer.model.parameters())
    grad_norms = []
    for step in range(1, trainer.total_steps + 1):
        indices = trainer.order.next()
        trainer.objective.set_step(step - 1)
        buffers = {name: b.clone() for name, b in trainer.model.named_buffers()}
        loss = trainer.trained(trainer.built.data.to_float(trainer.train_x[indices])).total
        if step in skipped:  # the batch leaves no trace in BatchNorm's running statistics
            trainer.model.load_state_dict(buffers, strict=False)
        else:
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(
                params, float("inf") if clip is None else clip, foreach=True)))
            trainer.optimizer.step()
        with warnings.catch_warnings():  # a schedule stepped before its optimiser
            warnings.simplefilter("ignore", UserWarning)
            trainer.scheduler.step()
    return trainer, grad_norms


def assert_same_state(trainer: Trainer, expected: Trainer) -> None:
    a, b = trainer.model.state_dict(), expected.model.state_dict()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    sa, sb = trainer.optimizer.state_dict()["state"], expected.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for key in sb:
        for field in sb[key]:
            torch.testing.assert_close(sa[key][field], sb[key][field], rtol=0, atol=0)


def test_a_bad_batch_is_skipped_and_training_continues_bit_exactly(bad_at):
    spec = spec_with("train.skip_update={nonfinite: true}")
    bad_at(3)
    logged = Logged()
    trainer = Trainer(hierot.build(spec), None, single_process("cpu"), callbacks=[logged])
    trainer.fit()
    bad_at(3)
    expected, grad_norms = reference(spec, skipped={3})
    assert_same_state(trainer, expected)
    assert trainer.updates.skipped == 1 and trainer.updates.consecutive == 0
    assert [r["skipped"] for r in logged.rows] == [0, 0, 1, 1, 1, 1]
    assert "grad_norm" not in logged.rows[2]  # step 3 took no update: nothing to average
    norms = [r["grad_norm"] for r in logged.rows if "grad_norm" in r]
    assert norms == pytest.approx(grad_norms, rel=1e-6)


def test_without_skip_update_a_bad_batch_still_stops_the_run(bad_at):
    bad_at(3)
    with pytest.raises(NonFiniteLossError, match=r"^step 3: non-finite objective term"):
        Trainer(hierot.build(spec_with()), None, single_process("cpu")).fit()


def test_gradient_norms_above_the_threshold_are_skipped_and_clipping_matches_torch(bad_at):
    """With the threshold at the median gradient norm some updates are skipped and some taken;
    the taken ones are clipped from the norm already computed, to torch's result bit for bit."""
    bad_at()
    _, norms = reference(spec_with(), skipped=set())
    threshold = sorted(norms)[len(norms) // 2]
    spec = spec_with(f"train.skip_update={{grad_norm_above: {threshold!r}}}",
                     "optimizer.clip_grad_norm=0.05")
    bad_at()
    logged = Logged()
    trainer = Trainer(hierot.build(spec), None, single_process("cpu"), callbacks=[logged])
    trainer.fit()
    skipped = {r["step"] for r in logged.rows if "grad_norm" not in r}
    taken = [r["grad_norm"] for r in logged.rows if "grad_norm" in r]
    assert skipped and taken and trainer.updates.skipped == len(skipped)
    assert all(n <= threshold for n in taken)
    bad_at()
    expected, expected_norms = reference(spec, skipped=skipped, clip=0.05)
    assert_same_state(trainer, expected)
    assert taken == pytest.approx(expected_norms, rel=1e-6)


def test_max_consecutive_skips_stop_the_run_with_the_parameters_untouched(tmp_path, bad_at):
    bad_at()
    spec = spec_with("train.skip_update={grad_norm_above: 1.0e-12, max_consecutive: 3}",
                     "train.checkpoint_every=1")
    with pytest.raises(NonFiniteLossError, match=r"^step 3: 3 updates skipped in a row \(train"
                       r"\.skip_update\.max_consecutive=3; the last: gradient norm .* above"):
        hierot.fit(spec, out=tmp_path / "run")
    run = Run(tmp_path / "run")
    initial = hierot.build(spec).model.state_dict()
    state = run.load_checkpoint()
    assert state["step"] == 2 and state["optimizer"]["state"] == {}  # Adam never stepped
    for name, value in initial.items():
        torch.testing.assert_close(state["model"][name], value, rtol=0, atol=0, msg=name)
    rows = run.read_metrics()
    assert [int(r["skipped"]) for r in rows] == [1, 2]


def test_skip_counts_resume_exactly_and_skip_update_may_change_on_resume(tmp_path, bad_at):
    spec = spec_with("train.skip_update={nonfinite: true}")
    bad_at(2, 5)
    hierot.fit(spec, out=tmp_path / "straight")
    bad_at(2, 5)
    hierot.fit(spec, out=tmp_path / "stopped", overrides=["train.steps=3"])
    # a run that hit its limit may be resumed with another policy: no experiment changes
    hierot.fit(resume=tmp_path / "stopped", overrides=[
        "train.steps=6", "train.skip_update={nonfinite: true, max_consecutive: 4}"])
    straight, resumed = Run(tmp_path / "straight"), Run(tmp_path / "stopped")
    a, b = straight.load_checkpoint(), resumed.load_checkpoint()
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=0, atol=0)
    assert a["updates"] == b["updates"] == {"skipped": 2, "consecutive": 0}
    assert [r["skipped"] for r in resumed.read_metrics()] == [0, 1, 1, 1, 2, 2]
    norms = [r.get("grad_norm") for r in resumed.read_metrics()]
    assert norms == [r.get("grad_norm") for r in straight.read_metrics()]
    assert norms[1] is None and norms[4] is None  # the skipped steps: no update, no norm


@pytest.mark.parametrize("override, field", [
    ("train.skip_update={grad_norm_above: 0}", "train.skip_update.grad_norm_above"),
    ("train.skip_update={grad_norm_above: -1.5}", "train.skip_update.grad_norm_above"),
    ("train.skip_update={max_consecutive: 0}", "train.skip_update.max_consecutive"),
    ("train.skip_update={nonfinite: maybe}", "train.skip_update.nonfinite"),
])
def test_bad_skip_update_options_name_their_field(override, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        hierot.load_spec(TINY, [override])


def test_the_cli_refuses_a_bad_threshold_with_exit_2(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(TINY))
    code = main(["train", str(spec), "--out", str(tmp_path / "run"),
                 "--set", "train.skip_update={grad_norm_above: 0}"])
    err = capsys.readouterr().err
    assert code == 2 and "train.skip_update.grad_norm_above" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_fp16_loss_scaler_is_told_of_each_kind_of_skip():
    """fp16 is CUDA-only, but its skip logic is not: a real GradScaler on the CPU. A skip over
    the threshold keeps the scale and its growth count; an overflow halves the scale; neither
    steps Adam; a good update after them does."""
    from hierot.precision import Precision
    from hierot.spec.schema import SkipUpdateSpec
    from hierot.training.updates import UpdateGuard

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(model.parameters())
    precision = Precision("bf16", torch.device("cpu"))
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    guard = UpdateGuard(SkipUpdateSpec(grad_norm_above=10.0), None, precision,
                        list(model.parameters()), torch.device("cpu"))
    x = torch.ones(2, 4)

    def attempt(scale: float = 1.0) -> str | None:
        optimizer.zero_grad(set_to_none=True)
        precision.backward(model(x).sum() * scale)
        _, norm = guard.grad_norms(optimizer)
        reason = guard.reason(float(norm))
        if reason is None:
            precision.step(optimizer)
            guard.taken()
        else:
            guard.skipped_update(1, reason, optimizer, "kept")
        return reason

    growth = precision.scaler.state_dict()["_growth_tracker"]
    assert attempt(scale=100.0).startswith("gradient norm")  # unscaled norm ~283 > 10
    assert precision.scaler.get_scale() == 1024.0 and optimizer.state == {}
    assert precision.scaler.state_dict()["_growth_tracker"] == growth
    assert attempt(scale=float("inf")) == "fp16 overflow"
    assert precision.scaler.get_scale() == 512.0 and optimizer.state == {}
    assert attempt() is None and len(optimizer.state) == 2
    assert (guard.skipped, guard.consecutive) == (2, 0)


def test_gradient_norm_is_clipped():
    trainer = Trainer(hierot.build(train_spec("cpu", "optimizer.clip_grad_norm=0.01")))
    trainer._train_step()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) <= 0.01 * 1.0001
    unclipped = Trainer(hierot.build(train_spec("cpu")))
    unclipped._train_step()
    norms = [p.grad.norm() for p in unclipped.model.parameters() if p.grad is not None]
    assert float(torch.linalg.vector_norm(torch.stack(norms))) > 0.1  # clipping did something
