"""bf16 weight copies (hierot/training/weight_copies.py): the forward pass on bfloat16 copies cast
once per update, float32 masters everywhere else; resume, skips, EMA, compile, DDP, evaluation."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py

import hierot
from hierot.cli import main
from hierot.evaluation.trained import load_run
from hierot.run import Run
from hierot.training.runtime import single_process
from hierot.training.trainer import Trainer
from hierot.training.weight_copies import LowPrecisionWeights, low_precision_weights

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 6, "log_every": 1, "checkpoint_every": 3,
              "progress": False, "precision": "bf16"},
}


def trainer(*overrides: str, copies: bool = True) -> Trainer:
    """A bf16 trainer of :data:`TINY`; ``copies=False``: autocast's casts (the former step)."""
    torch.manual_seed(0)
    t = Trainer(hierot.build(hierot.load_spec(TINY, list(overrides))), None,
                single_process("cpu"))
    if not copies:
        t.copies = t.updates.copies = None
    return t


def copies_match_masters(c: LowPrecisionWeights) -> bool:
    return all(torch.equal(copy, master.detach().to(torch.bfloat16))
               for copy, master in zip(c.copies, c.masters))


def test_the_copies_are_the_matrix_weights_and_the_step_is_autocasts_to_the_bit():
    ours, theirs = trainer(), trainer(copies=False)
    c = ours.copies
    assert c is not None and copies_match_masters(c)
    named = dict(ours.objective.named_parameters())
    linear = {n for n, p in named.items() if p.ndim == 2 or ".head." in n}  # not BatchNorm's
    assert set(c.names) == linear and len(linear) < len(named)
    assert all(t.dtype == torch.bfloat16 and t.is_leaf for t in c.copies)
    assert len(c.linears) == 11  # hidden, mean and log-variance (deterministic: no log-var)
    x = ours.built.data.to_float(ours.train_x[:64])
    results = []
    for t, forward in ((ours, c), (theirs, theirs.trained)):
        torch.manual_seed(1)
        with t.precision.autocast():
            terms = forward(x)
        terms.total.backward()
        t.updates.grad_norms(t.optimizer)
        results.append((terms.total.detach(), [p.grad for p in t.model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)  # the same bf16 values, the same products
    for a, b in zip(grads_a, grads_b):  # the same roundings, the same float32 sums
        assert a.dtype == torch.float32 and torch.equal(a, b)
    assert all(copy.grad is None for copy in c.copies) and not c.fresh
    for t in (ours, theirs):  # whole steps: the same updates
        for step in range(3):
            torch.manual_seed(step)
            t._train_step()
    for a, b in zip(ours.model.parameters(), theirs.model.parameters()):
        assert torch.equal(a, b)


def test_each_taken_update_refreshes_the_copies_once():
    t = trainer()
    for step in range(1, 4):
        t._train_step()
        assert t.copies.refreshes == step - 1  # refreshed before the next forward pass
        assert not copies_match_masters(t.copies)  # the masters moved, the copies wait
    t.copies.refresh()
    assert t.copies.refreshes == 3 and copies_match_masters(t.copies)
    pointers = [copy.data_ptr() for copy in t.copies.copies]
    t._train_step()
    t.copies.refresh()
    assert [copy.data_ptr() for copy in t.copies.copies] == pointers  # in place
    assert [g.data_ptr() for g in t.copies.grads] == [
        p.grad.data_ptr() for p in t.copies.masters]  # the masters' gradient buffers


def test_a_skipped_update_leaves_masters_and_copies_untouched():
    t = trainer("train.skip_update={grad_norm_above: 1.0e-9}")
    t.copies.refresh()
    masters = [p.detach().clone() for p in t.copies.masters]
    copies = [copy.detach().clone() for copy in t.copies.copies]
    versions = [copy._version for copy in t.copies.copies]
    for _ in range(3):
        assert t._train_step() is None  # every norm is above the threshold
    assert t.updates.skipped == 3 and t.copies.refreshes == 0
    assert all(torch.equal(a, b) for a, b in zip(masters, t.copies.masters))
    assert all(torch.equal(a, b) for a, b in zip(copies, t.copies.copies))
    assert [copy._version for copy in t.copies.copies] == versions  # not even rewritten


def test_checkpoints_keep_float32_masters_and_resume_is_bit_exact(tmp_path):
    hierot.fit(TINY, out=tmp_path / "straight")
    hierot.fit(TINY, out=tmp_path / "stopped", overrides=["train.steps=3"])
    hierot.fit(resume=tmp_path / "stopped", overrides=["train.steps=6"])
    a = Run(tmp_path / "straight").load_checkpoint()
    b = Run(tmp_path / "stopped").load_checkpoint()
    assert a["step"] == b["step"] == 6
    for name, value in a["model"].items():
        assert value.dtype != torch.bfloat16, name
        torch.testing.assert_close(b["model"][name], value, rtol=0, atol=0, msg=name)
    # the copies follow a checkpoint loaded into a trainer (torch's version counters)
    t = trainer()
    t.load_state(b)
    assert t.copies.stale()
    t.copies.refresh()
    assert copies_match_masters(t.copies)
    assert torch.equal(t.copies.masters[0].detach(), b["model"][t.copies.names[0][6:]])


def test_ema_and_held_out_evaluation_see_the_masters_and_leave_training_unchanged(tmp_path):
    """With the EMA's swap at each evaluation, the raw weights are those of the run without
    either (the copies are refreshed from the restored masters); the averages are float32."""
    ema = "train.ema={decay: 0.5, start_step: 2}"
    hierot.fit(TINY, out=tmp_path / "plain")
    hierot.fit(TINY, out=tmp_path / "ema", overrides=[ema, "train.eval_every=2"])
    plain, averaged = (Run(tmp_path / n).load_checkpoint() for n in ("plain", "ema"))
    for name, value in plain["model"].items():
        assert torch.equal(averaged["model"][name], value), name
        if value.is_floating_point():
            assert averaged["ema"][name].dtype == torch.float32
    rows = Run(tmp_path / "ema").read_metrics()
    assert all(torch.isfinite(torch.tensor(r["val_total"])) for r in rows if "val_total" in r)


def test_the_held_out_terms_are_those_of_the_masters_under_autocast():
    t = trainer("train.eval_every=2")
    for _ in range(2):
        t._train_step()
    metrics = t.heldout()
    t.copies = t.updates.copies = None  # evaluate the same weights with autocast's casts
    assert t.heldout() == metrics


def test_compiled_networks_run_on_the_copies(monkeypatch):
    """dynamo traces the networks with the copies in place of their parameters ("aot_eager":
    the same kernels as eager, without TorchInductor's C++ build, too slow for a test)."""
    from hierot.training import compiling

    def compile_networks(model, device):
        for network in [*model.encoders, *model.decoders]:
            network.compile(backend="aot_eager")

    monkeypatch.setattr(compiling, "compile_networks", compile_networks)
    compiled, eager = trainer("train.compile=true"), trainer()
    assert compiled.copies.linears == [] and len(eager.copies.linears) == 11
    for step in range(3):
        values = []
        for t in (compiled, eager):
            torch.manual_seed(step)  # the same noise for both
            values.append(t._train_step()["total"])
        torch.testing.assert_close(values[0], values[1], rtol=1e-5, atol=0)
    assert compiled.copies.refreshes == 2


def test_copies_only_for_bf16_on_one_process():
    objective = torch.nn.Sequential(torch.nn.Linear(2, 2))
    bf16 = SimpleNamespace(name="bf16", dtype=torch.bfloat16)
    assert isinstance(low_precision_weights(bf16, objective, objective), LowPrecisionWeights)
    wrapper = torch.nn.Sequential(objective)  # a DDP wrapper: its hooks sit on the masters
    assert low_precision_weights(bf16, wrapper, objective) is None
    for name, dtype in (("fp32", None), ("fp16", torch.float16)):  # fp16: the scaler unscales
        assert low_precision_weights(SimpleNamespace(name=name, dtype=dtype), objective,
                                     objective) is None
    assert trainer("train.precision=fp32").copies is None


def test_ddp_keeps_autocasts_casts_and_all_reduces_as_before(tmp_path):
    """One gloo process under DDP: no copies, and the same updates as the single-process
    autocast step up to the order of bf16 sums (DDP's gather reorders the backward pass;
    deterministic encoders, as DDP draws the encoders' noise from its own streams)."""
    import torch.distributed as dist

    from hierot.spec.schema import DistributedSpec
    from hierot.training.distributed import DistributedRuntime

    deterministic = [f"layers.{i}.encoder_head=deterministic" for i in range(2)]
    deterministic.append("optimizer={name: sgd, lr: 0.01}")  # updates in proportion to grads
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        runtime = DistributedRuntime(torch.device("cpu"), 0, 1, 0, DistributedSpec())
        torch.manual_seed(0)
        ddp = Trainer(hierot.build(hierot.load_spec(TINY, deterministic)), None, runtime)
        assert ddp.copies is None and ddp.trained is not ddp.objective
        single = trainer(*deterministic, copies=False)
        start = [p.detach().clone() for p in single.model.parameters()]
        for step in range(3):
            for t in (ddp, single):
                torch.manual_seed(step)  # the same prior samples for both
                t._train_step()
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    flat = [torch.cat([p.detach().flatten() for p in ps])
            for ps in (ddp.model.parameters(), single.model.parameters(), start)]
    moved = float((flat[1] - flat[2]).norm())
    assert moved > 0 and float((flat[0] - flat[1]).norm()) < 0.02 * moved


def test_hierot_eval_and_load_run_read_a_bf16_run_in_float32(tmp_path, capsys):
    hierot.fit(TINY, out=tmp_path / "run", overrides=["train.steps=3"])
    state = Run(tmp_path / "run").load_checkpoint()
    loaded = load_run(tmp_path / "run")
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, state["model"][name]), name
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    assert main(["eval", str(tmp_path / "run"), "--samples", "200", "--resamples", "10"]) == 0
    assert "wall time" in capsys.readouterr().out


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_gradient_norm_is_the_norm_of_the_float32_gradients(precision):
    t = trainer(f"train.precision={precision}")
    values = t._train_step()
    grads = [p.grad for p in t.model.parameters()]
    expected = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    torch.testing.assert_close(values["grad_norm"], expected, rtol=1e-6, atol=0)


def test_convolutions_train_on_copies_through_autograd():
    """resnet layers: their convolutions' copies get their gradients from autograd (no custom
    function); the forward pass is autocast's, the gradients agree to bf16 rounding."""
    layers = [{"latent_shape": [2, 4, 4], "encoder": {"name": "resnet", "filters": 4},
               "decoder": {"name": "resnet", "filters": 4}, "decoder_head": "deterministic"},
              {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [16]},
               "decoder": {"name": "mlp", "hidden": [16]}}]
    layers_override = f"layers={layers}"
    ours, theirs = trainer(layers_override), trainer(layers_override, copies=False)
    convs = [n for n, p in zip(ours.copies.names, ours.copies.masters) if p.ndim == 4]
    assert convs and len(ours.copies.linears) == 6  # the top layer's MLPs
    for t in (ours, theirs):
        torch.manual_seed(0)
        t._train_step()
    loss = []
    for t in (ours, theirs):
        for p in t.model.parameters():
            p.grad = None
        torch.manual_seed(1)
        with t.precision.autocast():
            terms = (t.copies or t.trained)(t.built.data.to_float(t.train_x[:64]))
        terms.total.backward()
        t.updates.grad_norms(t.optimizer)
        loss.append(terms.total.detach())
    assert torch.equal(loss[0], loss[1])
    for (name, a), b in zip(ours.model.named_parameters(), theirs.model.parameters()):
        assert a.grad is not None and a.grad.dtype == torch.float32, name
        torch.testing.assert_close(a.grad, b.grad, rtol=0,
                                   atol=0.02 * float(b.grad.abs().max()) + 1e-8, msg=name)
