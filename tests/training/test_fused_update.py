"""train.fused_update (hierot/training/fused_update.py, _fused_kernel.py): Adam and the bf16
copies' refresh in one C kernel from the bf16 gradients; its maths against a float64 Adam, its
state against torch's Adam, resume, skips, the finite check, clipping and bad input."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py
from torch import nn

import hierot
from hierot.cli import main
from hierot.errors import HierotError, NonFiniteLossError, SpecError
from hierot.run import Run
from hierot.training import _fused_kernel
from hierot.training.fused_update import FusedBf16Adam, fused_bf16_adam
from hierot.training.runtime import single_process
from hierot.training.trainer import Trainer
from hierot.training.weight_copies import LowPrecisionWeights

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 6, "log_every": 1, "checkpoint_every": 3,
              "progress": False, "precision": "bf16", "fused_update": True},
}


def trainer(*overrides: str) -> Trainer:
    torch.manual_seed(0)
    return Trainer(hierot.build(hierot.load_spec(TINY, list(overrides))), None,
                   single_process("cpu"))


class Net(nn.Module):
    """Linear layers (one used twice: its gradient is summed in float32), a convolution (its
    gradient left by autograd on its copy) and BatchNorm (float32, no copy)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3, padding=1)
        self.a, self.norm, self.b = nn.Linear(10, 10), nn.BatchNorm1d(10), nn.Linear(10, 3)

    def forward(self, x):
        h = self.conv(x[:, None]).sum(1)
        return self.b(self.a(self.norm(self.a(h)).relu())).float().square().mean()


def adam64(p, g, m, v, step, lr, betas, eps, decay, decoupled):
    """Adam (Kingma & Ba 2015, Alg. 1; AdamW: Loshchilov & Hutter 2019, Alg. 2) in float64."""
    if decoupled:
        p = p * (1 - lr * decay)
    else:
        g = g + decay * p
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g * g
    m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
    return p - lr * m_hat / (v_hat.sqrt() + eps), m, v


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
def test_the_update_is_adam_in_float64_to_rounding_and_writes_the_copies(decoupled):
    torch.manual_seed(0)
    net = Net()
    copies = LowPrecisionWeights(net, torch.bfloat16, widen=False)
    options = {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}
    opt = FusedBf16Adam(net.parameters(), copies, decoupled_weight_decay=decoupled, **options)
    params = list(net.parameters())
    ref = [(p.detach().double(), torch.zeros_like(p, dtype=torch.float64),
            torch.zeros_like(p, dtype=torch.float64)) for p in params]
    for step in range(1, 4):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = copies(torch.randn(8, 10))
        loss.backward()
        grads = [g.double() for g in opt.gradients()]
        assert {g.dtype for g in opt.gradients()} == {torch.bfloat16, torch.float32}
        norms = opt.gradient_norms(torch.device("cpu"))
        torch.testing.assert_close(norms.double(), torch.stack([g.norm() for g in grads]),
                                   rtol=1e-6, atol=0)
        clip = min(1.0, 0.5 / float(norms.double().norm()))
        opt.scale_gradients(clip)
        opt.step()
        for k, (p, g) in enumerate(zip(params, grads)):
            ref[k] = adam64(*ref[k][:1], g * clip, *ref[k][1:], step, options["lr"],
                            options["betas"], options["eps"], options["weight_decay"], decoupled)
            state = opt.state[p]
            assert float(state["step"]) == step
            for ours, theirs in zip((p, state["exp_avg"], state["exp_avg_sq"]), ref[k]):
                torch.testing.assert_close(ours.detach().double(), theirs, rtol=2e-6, atol=1e-9)
    assert all(torch.equal(c, m.detach().to(torch.bfloat16))  # written with the masters
               for c, m in zip(copies.copies, copies.masters)) and copies.refreshes == 0
    # torch's state layout: its Adam loads the state and steps on from it
    theirs = torch.optim.AdamW if decoupled else torch.optim.Adam
    torch_opt = theirs([p.detach().clone().requires_grad_() for p in params], **options)
    torch_opt.load_state_dict(opt.state_dict())
    assert all(set(s) == {"step", "exp_avg", "exp_avg_sq"} for s in torch_opt.state.values())


@pytest.mark.parametrize("threads", [1, 2])
def test_the_kernel_writes_copies_at_any_alignment_as_the_update_without_them(threads):
    """With AVX-512 the copies are written 64 bytes at a time (non-temporal stores) after a
    head of unaligned values: whatever the copy's offset and the tensor's size, the masters and
    moments are those of the update without a copy, to the bit, and the copy is their bf16."""
    from hierot.training.fused_update import _hyper, _int64s, _ints, _pointers

    lib = _fused_kernel.load()
    hyper = _hyper({"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01,
                    "decoupled_weight_decay": True}, 3.0)
    gen = torch.Generator().manual_seed(0)
    for size, offset in ((31, 0), (100_003, 5), (3 * 65536 + 17, 19)):
        start = (torch.randn(size, generator=gen), torch.randn(size, generator=gen) / 10,
                 torch.rand(size, generator=gen) / 100)
        grad = torch.randn(size, generator=gen).bfloat16()
        results = []
        for with_copy in (False, True):
            p, m, v = (t.clone() for t in start)
            copy = torch.zeros(size + 32, dtype=torch.bfloat16)[offset:offset + size]
            written = copy if with_copy else None
            lib.adam_update(1, _int64s([size]), _pointers([p]), _pointers([grad]), _ints([1]),
                            _pointers([m]), _pointers([v]), _pointers([written]),
                            (ctypes.c_double * 8)(*hyper), ctypes.c_float(0.7), threads)
            results.append((p, m, v, copy))
        assert all(torch.equal(a, b) for a, b in zip(results[0][:3], results[1][:3]))
        assert torch.equal(results[1][3], results[1][0].bfloat16())


def test_the_results_do_not_depend_on_the_number_of_threads():
    """The norm's blocks are summed in order and the update is elementwise (100,000 values: the
    kernels split them across threads)."""
    results = []
    for threads in (1, 2):
        torch.manual_seed(0)
        net = nn.Linear(1000, 100)
        copies = LowPrecisionWeights(net, torch.bfloat16, widen=False)
        opt = FusedBf16Adam(net.parameters(), copies, lr=1e-3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            copies(torch.randn(16, 1000)).square().mean().backward()
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            norms = opt.gradient_norms(torch.device("cpu"))
            opt.step()
        finally:
            torch.set_num_threads(before)
        results.append([norms, net.weight.detach().clone(), copies.copies[0].detach().clone()])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def _fused_net(seed: int = 0) -> tuple[Net, LowPrecisionWeights, FusedBf16Adam]:
    torch.manual_seed(seed)
    net = Net()
    copies = LowPrecisionWeights(net, torch.bfloat16, widen=False)
    return net, copies, FusedBf16Adam(net.parameters(), copies, lr=1e-2)


def _fused_step(net, copies, opt, x, frozen=False):
    """One step; ``frozen``: without a gradient for ``b.bias`` (its copy frozen)."""
    bias = copies.copies[copies.names.index("b.bias")]
    bias.requires_grad_(not frozen)
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        copies(x).backward()
    opt.gradient_norms(torch.device("cpu"))
    opt.step()
    bias.requires_grad_(True)


def test_the_kernel_arguments_kept_between_steps_follow_loads_and_missing_gradients():
    """The arguments are kept from step to step: a state loaded mid-run, a moment tensor
    replaced, a parameter without a gradient for one step and the counters (one tensor, each
    state's ``step`` a view) give what a fresh optimiser, rebuilt at every step from the state,
    gives."""
    xs = [torch.randn(8, 10, generator=torch.Generator().manual_seed(k)) for k in range(6)]
    kept, rebuilt = _fused_net(), _fused_net()
    for k, x in enumerate(xs):
        _fused_step(*kept, x, frozen=k == 2)
        net, copies, opt = rebuilt
        state = opt.state_dict()
        opt = FusedBf16Adam(net.parameters(), copies, lr=1e-2)  # nothing kept
        opt.load_state_dict(state)
        _fused_step(net, copies, opt, x, frozen=k == 2)
        rebuilt = (net, copies, opt)
        if k == 3:  # a state loaded into the running optimiser: its moments are new tensors
            kept[2].load_state_dict(copy_state(opt.state_dict()))
        if k == 4:  # one moment replaced by hand, as torch's Adam allows
            state = kept[2].state[kept[0].a.weight]
            state["exp_avg_sq"] = state["exp_avg_sq"].clone()
    for (a, b) in zip(kept[0].parameters(), rebuilt[0].parameters()):
        assert torch.equal(a, b)
        sa, sb = kept[2].state[a], rebuilt[2].state[b]
        assert all(torch.equal(sa[key], sb[key]) for key in ("step", "exp_avg", "exp_avg_sq"))
    steps = {float(kept[2].state[p]["step"]) for p in kept[0].parameters()}
    assert steps == {5.0, 6.0}  # b.bias had no gradient in one step
    assert float(kept[2].state[kept[0].b.bias]["step"]) == 5.0


def copy_state(state: dict) -> dict:
    """A deep copy of an optimiser's state dict (new tensors, as a checkpoint loads them)."""
    return {"state": {k: {n: t.clone() for n, t in v.items()} for k, v in state["state"].items()},
            "param_groups": [dict(g) for g in state["param_groups"]]}


def test_a_linear_weight_used_twice_gets_the_float32_sum_of_its_uses():
    torch.manual_seed(0)
    nets = [Net(), Net()]
    nets[1].load_state_dict(nets[0].state_dict())
    grads = []
    for net, widen in zip(nets, (True, False)):
        copies = LowPrecisionWeights(net, torch.bfloat16, widen=widen)
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            copies(torch.randn(8, 10)).backward()
        if widen:
            copies.gradients_to_masters()
            grads.append([p.grad for p in copies.masters])
        else:
            taken = copies.take_gradients()
            grads.append([taken[i].float() for i in range(len(copies.masters))])
            assert taken[copies.names.index("a.weight")].dtype == torch.float32  # two uses
            assert taken[copies.names.index("b.weight")].dtype == torch.bfloat16
            assert not copies.fresh and not copies.wide
    for a, b in zip(*grads):
        assert torch.equal(a, b)


RESNET = [{"latent_shape": [2, 4, 4], "encoder": {"name": "resnet", "filters": 4},
           "decoder": {"name": "resnet", "filters": 4}, "decoder_head": "deterministic"},
          {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [16]},
           "decoder": {"name": "mlp", "hidden": [16]}}]


@pytest.mark.parametrize("layers", [[], [f"layers={RESNET}"]], ids=["mlp", "resnet"])
def test_training_with_the_fused_update_follows_the_default_bf16_step_to_rounding(layers):
    """Clipped AdamW; the resnet layers' convolutions are channels-last (their gradients from
    autograd on the copies)."""
    clip = ["optimizer.clip_grad_norm=1.0", "optimizer.name=adamw", "optimizer.weight_decay=0.01"]
    ours = trainer(*clip, *layers)
    theirs = trainer(*clip, *layers, "train.fused_update=false")
    assert any(not p.is_contiguous() for p in ours.model.parameters()) == bool(layers)
    assert isinstance(ours.optimizer, FusedBf16Adam) and not ours.copies.widen
    for step in range(3):
        values = []
        for t in (ours, theirs):
            torch.manual_seed(step)
            values.append(t._train_step())
        torch.testing.assert_close(values[0]["grad_norm"], values[1]["grad_norm"], rtol=1e-6,
                                   atol=0)
        assert float(values[0]["grad_norm"]) > 1.0  # clipped
    for a, b in zip(ours.model.parameters(), theirs.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert a.stride() == b.stride()
    assert ours.copies.refreshes == 0 and theirs.copies.refreshes == 2


def test_resume_is_bit_exact_with_ema_and_held_out_evaluation(tmp_path):
    extra = ["train.ema={decay: 0.5, start_step: 2}", "train.eval_every=2"]
    hierot.fit(TINY, out=tmp_path / "straight", overrides=extra)
    hierot.fit(TINY, out=tmp_path / "stopped", overrides=[*extra, "train.steps=3"])
    hierot.fit(resume=tmp_path / "stopped", overrides=["train.steps=6"])
    a, b = (Run(tmp_path / n).load_checkpoint() for n in ("straight", "stopped"))
    assert a["step"] == b["step"] == 6
    for part in ("model", "ema"):
        for name, value in a[part].items():
            assert torch.equal(b[part][name], value), (part, name)
    for key, state in a["optimizer"]["state"].items():
        assert set(state) == {"step", "exp_avg", "exp_avg_sq"} and float(state["step"]) == 6
        for field, value in state.items():
            assert torch.equal(b["optimizer"]["state"][key][field], value), (key, field)
    rows = Run(tmp_path / "stopped").read_metrics()
    assert [r["step"] for r in rows if "val_total" in r] == [2, 3, 4, 6]  # 3: the end of a run


def test_a_skipped_update_leaves_masters_moments_and_copies_untouched():
    t = trainer()
    t._train_step()
    before = [x.detach().clone() for x in [*t.model.parameters(), *t.copies.copies,
                                           *t._optimizer_tensors()]]
    versions = [c._version for c in t.copies.copies]
    t.updates.skip = SimpleNamespace(grad_norm_above=1e-9, nonfinite=True, max_consecutive=9)
    for _ in range(2):
        assert t._train_step() is None
    after = [*t.model.parameters(), *t.copies.copies, *t._optimizer_tensors()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert [c._version for c in t.copies.copies] == versions and t.updates.skipped == 2
    t.updates.skip = None
    assert t._train_step() is not None  # the next update is taken from fresh gradients
    assert not torch.equal(before[0], next(t.model.parameters()))


def test_a_non_finite_gradient_is_named_and_nothing_is_updated(monkeypatch):
    t = trainer()
    take = t.copies.take_gradients
    bad = t.copies.masters[2]
    name = next(n for n, p in t.model.named_parameters() if p is bad)

    def poisoned():
        taken = take()
        taken[2].view(-1)[0] = float("nan")
        return taken

    monkeypatch.setattr(t.copies, "take_gradients", poisoned)
    before = [p.detach().clone() for p in t.model.parameters()]
    with pytest.raises(NonFiniteLossError, match=rf"^step 1: non-finite gradient of {name};"):
        t._train_step()
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert not t.optimizer.state


@pytest.mark.parametrize("override, message", [
    ("train.precision=fp32", "needs train.precision bf16"),
    ("optimizer.name=sgd", "covers optimizer.name adam and adamw, not 'sgd'"),
    ("device=cuda", "runs on the CPU only"),
])
def test_bad_combinations_name_the_field(override, message):
    with pytest.raises(SpecError, match=rf"train\.fused_update: {message}"):
        hierot.load_spec(TINY, [override])


def test_the_cli_refuses_a_bad_combination_with_exit_2(tmp_path, capsys):
    code = main(["train", "quickstart", "--out", str(tmp_path / "run"),
                 "--set", "train.fused_update=true"])
    err = capsys.readouterr().err
    assert code == 2 and "train.fused_update" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_without_weight_copies_or_a_compiler_the_trainer_says_why(monkeypatch, tmp_path):
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(2))])
    with pytest.raises(HierotError, match=r"train\.fused_update: .*not under torchrun/DDP"):
        fused_bf16_adam(opt, None)  # what the trainer gets under DDP
    monkeypatch.setenv("HIEROT_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    _fused_kernel.load.cache_clear()
    try:
        with pytest.raises(HierotError, match=r"train\.fused_update: needs a C compiler"):
            _fused_kernel.load()
    finally:
        _fused_kernel.load.cache_clear()
    monkeypatch.delenv("CC")
    path = _fused_kernel.library_path(_fused_kernel.compiler())
    assert path.parent == tmp_path and not path.exists()
    _fused_kernel._build(_fused_kernel.compiler(), path)  # built once, then reused
    assert ctypes.CDLL(str(path)).adam_update is not None


def test_compiled_networks_feed_the_kernel_from_autograd_on_the_copies(monkeypatch):
    """Under ``train.compile`` the linear layers' gradients come from autograd on the copies,
    which the kernel reads as well: the compiled fused step follows the eager fused step to
    float32 rounding ("aot_eager": the same kernels, without TorchInductor's C++ build)."""
    from hierot.training import compiling

    def compile_networks(model, device):
        for network in [*model.encoders, *model.decoders]:
            network.compile(backend="aot_eager")

    monkeypatch.setattr(compiling, "compile_networks", compile_networks)
    compiled, eager = trainer("train.compile=true"), trainer()
    assert compiled.copies.linears == [] and eager.copies.linears
    for step in range(3):
        values = []
        for t in (compiled, eager):
            torch.manual_seed(step)  # the same noise for both
            values.append(t._train_step())
        for name in ("total", "grad_norm"):
            torch.testing.assert_close(values[0][name], values[1][name], rtol=1e-5, atol=0)
    lr = compiled.optimizer.param_groups[0]["lr"]  # Adam moves a weight by about lr a step
    for a, b in zip(compiled.model.parameters(), eager.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=lr / 20)  # rounding, not another update
