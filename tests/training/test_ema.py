"""train.ema (hierot/training/ema.py): the average's arithmetic, its checkpoints and exact
resume, the held-out evaluation and load_run on the averaged weights, and bad input."""

from __future__ import annotations

import pytest
import torch
import yaml
from _fixtures import two_layers  # tests/_fixtures.py
from torch import nn

import hierot
from hierot.cli import main
from hierot.errors import HierotError, RunChangedError, SpecError
from hierot.evaluation.trained import load_run
from hierot.run import Run
from hierot.spec.schema import EMASpec
from hierot.training.batches import fixed_batches
from hierot.training.ema import WeightEMA

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 64, "steps": 4, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}
EMA = "train.ema={decay: 0.5, start_step: 2}"


def test_the_average_follows_its_formula():
    """Up to start_step the average equals the weights; then every `every` steps
    avg <- decay * avg + (1 - decay) * weights."""
    model = nn.Linear(3, 2)
    ema = WeightEMA(EMASpec(decay=0.9, start_step=2, every=2), model)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 9):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(step)
        for e, p in zip(expected, model.parameters()):
            if step <= 2:
                e.copy_(p)
            elif (step - 2) % 2 == 0:
                e.copy_(0.9 * e + 0.1 * p)
        for e, a in zip(expected, ema.averages):
            torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ema.averages[0], model.weight)


def test_the_swap_restores_the_weights_bit_for_bit():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = WeightEMA(EMASpec(decay=0.5), model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0 / 3.0)
    ema.update(1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with ema.swapped():
        for a, p in zip(ema.averages, model.parameters()):
            assert torch.equal(p, a)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    # before any recomputation BatchNorm buffers are the model's own; parameters: the averages
    state = ema.state_dict()
    assert torch.equal(state["1.running_mean"], model[1].running_mean)
    assert torch.equal(state["0.weight"], ema.averages[0])


def test_compiled_networks_keep_the_names_the_average_uses():
    """``train.compile`` compiles each network in place: the averaged names stay the model's."""
    model = hierot.build(hierot.load_spec(TINY)).model
    for network in [*model.encoders, *model.decoders]:
        network.compile()  # nothing is compiled before a forward pass
    ema = WeightEMA(EMASpec(), model)
    assert ema.state_dict().keys() == model.state_dict().keys()


def test_checkpoints_hold_the_average_and_resume_exactly(tmp_path):
    hierot.fit(TINY, out=tmp_path / "straight", overrides=[EMA])
    hierot.fit(TINY, out=tmp_path / "stopped", overrides=[EMA, "train.steps=2"])
    at_2 = Run(tmp_path / "stopped").load_checkpoint()
    for name, value in at_2["model"].items():  # up to start_step: the weights themselves
        if "running_" not in name and "num_batches" not in name:  # BatchNorm's: recomputed
            assert torch.equal(at_2["ema"][name], value), name
    hierot.fit(resume=tmp_path / "stopped", overrides=["train.steps=4"])
    a = Run(tmp_path / "straight").load_checkpoint()
    b = Run(tmp_path / "stopped").load_checkpoint()
    for key in ("model", "ema"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0, msg=name)
    # after start_step the average lags the weights: every parameter differs
    weights = [n for n, _ in hierot.build(hierot.load_spec(TINY)).model.named_parameters()]
    assert all(not torch.equal(a["ema"][n], a["model"][n]) for n in weights)


def test_the_held_out_evaluation_uses_the_average_and_training_is_unchanged(tmp_path):
    """The same run with and without train.ema: identical raw weights (the swap leaves no
    trace), different held-out terms (they were taken with the averages)."""
    hierot.fit(TINY, out=tmp_path / "raw", overrides=["train.eval_every=4"])
    hierot.fit(TINY, out=tmp_path / "ema", overrides=[EMA, "train.eval_every=4"])
    raw, ema = Run(tmp_path / "raw"), Run(tmp_path / "ema")
    for name, value in raw.load_checkpoint()["model"].items():
        assert torch.equal(ema.load_checkpoint()["model"][name], value), name
    assert raw.read_metrics()[-1]["total"] == ema.read_metrics()[-1]["total"]
    assert raw.read_metrics()[-1]["val_total"] != ema.read_metrics()[-1]["val_total"]
    best = ema.load_checkpoint("best")  # --checkpoint best carries the average too
    assert "ema" in best


def test_load_run_uses_the_average_when_present_and_weights_chooses(tmp_path):
    hierot.fit(TINY, out=tmp_path / "ema", overrides=[EMA])
    hierot.fit(TINY, out=tmp_path / "raw")
    state = Run(tmp_path / "ema").load_checkpoint()
    default, raw = load_run(tmp_path / "ema"), load_run(tmp_path / "ema", weights="raw")
    assert (default.weights, raw.weights) == ("ema", "raw")
    name = "encoders.0.body.1.weight"
    assert torch.equal(default.model.state_dict()[name], state["ema"][name])
    assert torch.equal(raw.model.state_dict()[name], state["model"][name])
    assert load_run(tmp_path / "raw").weights == "raw"
    with pytest.raises(HierotError, match=r"--weights ema: .* holds no moving average"):
        load_run(tmp_path / "raw", weights="ema")


def test_sample_weights_flag(tmp_path, capsys):
    hierot.fit(TINY, out=tmp_path / "ema", overrides=[EMA])
    hierot.fit(TINY, out=tmp_path / "raw")
    outs = {}
    for weights in ("ema", "raw"):
        outs[weights] = tmp_path / f"{weights}.pt"
        code = main(["sample", str(tmp_path / "ema"), "-n", "8", "--out", str(outs[weights]),
                     "--weights", weights])
        assert code == 0
    assert not torch.equal(torch.load(outs["ema"]), torch.load(outs["raw"]))
    code = main(["sample", str(tmp_path / "raw"), "-n", "8", "--out", str(tmp_path / "x.pt"),
                 "--weights", "ema"])
    err = capsys.readouterr().err
    assert code == 2 and "--weights ema" in err and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists()


def test_bf16_training_keeps_float32_averages(tmp_path):
    hierot.fit(TINY, out=tmp_path / "run", overrides=[EMA, "train.precision=bf16"])
    state = Run(tmp_path / "run").load_checkpoint()
    for name, value in state["ema"].items():
        assert value.dtype == state["model"][name].dtype, name
        if value.is_floating_point():
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), name


@pytest.mark.parametrize("decay", ["0", "1", "1.5", "-0.1"])
def test_a_decay_outside_0_1_names_the_field(decay):
    with pytest.raises(SpecError, match=r"train\.ema\.decay"):
        hierot.load_spec(TINY, [f"train.ema={{decay: {decay}}}"])


def test_the_cli_refuses_a_bad_decay_with_exit_2(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    code = main(["train", str(spec), "--out", str(tmp_path / "run"),
                 "--set", "train.ema={decay: 1.0}"])
    err = capsys.readouterr().err
    assert code == 2 and "train.ema.decay" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_resume_that_changes_train_ema_is_refused(tmp_path):
    hierot.fit(TINY, out=tmp_path / "run", overrides=["train.steps=2"])
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    with pytest.raises(RunChangedError, match=r"train\.ema: null -> "):
        hierot.fit(resume=tmp_path / "run", overrides=[EMA])
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before


# -- BatchNorm statistics of the averages (train.ema.batchnorm) ----------------------------------
def _model_with_an_average() -> tuple[nn.Module, WeightEMA]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    ema = WeightEMA(EMASpec(decay=0.5), model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(1)  # the averages now differ from the weights
    model.train()
    model(torch.randn(32, 3))  # the raw model's running statistics move off their start
    return model, ema


def test_recomputed_statistics_are_the_plain_mean_over_the_batches_under_the_averages():
    model, ema = _model_with_an_average()
    batches = [torch.randn(16, 3) * 2 + 1 for _ in range(3)]
    raw = {n: b.clone() for n, b in model.named_buffers()}
    rng = torch.get_rng_state()
    model.eval()
    ema.recompute_statistics(7, batches, model)
    weight, bias = ema.averages[0], ema.averages[1]  # the first Linear's averaged parameters
    hidden = [x @ weight.T + bias for x in batches]
    torch.testing.assert_close(ema.statistics["1.running_mean"],
                               torch.stack([h.mean(0) for h in hidden]).mean(0))
    torch.testing.assert_close(ema.statistics["1.running_var"],
                               torch.stack([h.var(0) for h in hidden]).mean(0))
    assert int(ema.statistics["1.num_batches_tracked"]) == 3 and ema.statistics_step == 7
    # the raw model is as it was: buffers, momentum, mode, RNG
    for name, value in model.named_buffers():
        assert torch.equal(value, raw[name]), name
    assert model[1].momentum == 0.1 and not model.training
    assert torch.equal(torch.get_rng_state(), rng)
    # the swap and the state dict carry them; the swap restores the model's own afterwards
    with ema.swapped():
        assert torch.equal(model[1].running_mean, ema.statistics["1.running_mean"])
    assert torch.equal(model[1].running_mean, raw["1.running_mean"])
    assert torch.equal(ema.state_dict()["1.running_var"], ema.statistics["1.running_var"])


def test_the_raw_rule_keeps_the_model_statistics():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = WeightEMA(EMASpec(batchnorm="raw"), model)
    ema.recompute_statistics(1, [torch.randn(8, 3)], model)
    assert not ema.recomputes and ema.statistics == {}
    assert torch.equal(ema.state_dict()["1.running_mean"], model[1].running_mean)


def test_training_recomputes_the_statistics_and_is_unchanged_by_them(tmp_path):
    """The same run with batchnorm recompute and raw: the same weights and training metrics bit
    for bit; the checkpoint's average carries statistics that torch's own SWA routine
    (``swa_utils.update_bn``) computes for the first encoder on the same batches; the held-out
    terms are taken with them."""
    overrides = [EMA, "train.eval_every=4"]
    hierot.fit(TINY, out=tmp_path / "recompute", overrides=overrides)
    hierot.fit(TINY, out=tmp_path / "raw", overrides=[*overrides, "train.ema.batchnorm=raw"])
    new, old = Run(tmp_path / "recompute"), Run(tmp_path / "raw")
    a, b = new.load_checkpoint(), old.load_checkpoint()
    for name, value in b["model"].items():
        assert torch.equal(a["model"][name], value), name
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    assert new.read_metrics()[-1]["total"] == old.read_metrics()[-1]["total"]
    assert new.read_metrics()[-1]["val_total"] != old.read_metrics()[-1]["val_total"]
    # the reference: torch's update_bn on the first encoder with the averaged weights
    built = hierot.build(hierot.load_spec(TINY))
    built.model.load_state_dict(a["ema"])
    x = built.data.train_x
    batches = [built.data.to_float(x[i]) for i in fixed_batches(len(x), 64, 0, 50)]
    encoder = built.model.encoders[0]
    torch.optim.swa_utils.update_bn(batches, encoder)
    for name, value in encoder.state_dict().items():
        if "running_" in name:
            torch.testing.assert_close(a["ema"][f"encoders.0.{name}"], value, msg=name)
            assert not torch.equal(a["ema"][f"encoders.0.{name}"], a["model"][f"encoders.0.{name}"])
    # load_run (eval, sample, plot) takes them; best.pt carries them too
    loaded = load_run(tmp_path / "recompute").model.state_dict()
    for name, value in a["ema"].items():
        assert torch.equal(loaded[name], value), name
    best = new.load_checkpoint("best")["ema"]
    assert torch.equal(best["encoders.0.body.2.running_mean"],
                       a["ema"]["encoders.0.body.2.running_mean"])


def test_a_resume_may_change_how_the_statistics_are_estimated(tmp_path):
    hierot.fit(TINY, out=tmp_path / "straight", overrides=[EMA])
    hierot.fit(TINY, out=tmp_path / "run", overrides=[EMA, "train.steps=2"])
    hierot.fit(resume=tmp_path / "run",
               overrides=["train.steps=4", "train.ema.batchnorm_batches=3"])
    a, b = Run(tmp_path / "straight").load_checkpoint(), Run(tmp_path / "run").load_checkpoint()
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value), name
    changes = (tmp_path / "run" / "changes.jsonl").read_text()
    assert "train.ema.batchnorm_batches" in changes
    name = "encoders.0.body.2.num_batches_tracked"
    n = len(hierot.build(hierot.load_spec(TINY)).data.train_x)
    assert (int(a["ema"][name]), int(b["ema"][name])) == (len(fixed_batches(n, 64, 0, 50)), 3)


@pytest.mark.parametrize("override, field", [
    ("train.ema={batchnorm: ema}", r"train\.ema\.batchnorm.*'recompute' or 'raw'"),
    ("train.ema={batchnorm_batches: 0}", r"train\.ema\.batchnorm_batches"),
])
def test_bad_batchnorm_settings_name_the_field(override, field):
    with pytest.raises(SpecError, match=field):
        hierot.load_spec(TINY, [override])


def test_compiled_networks_get_the_same_statistics(tmp_path):
    """Under ``train.compile`` the pass runs the networks eagerly (BatchNorm's cumulative mean
    would break dynamo's graph): the statistics are the eager run's, to round-off."""
    overrides = [EMA, "train.eval_every=2"]
    hierot.fit(TINY, out=tmp_path / "compiled", overrides=[*overrides, "train.compile=true"])
    hierot.fit(TINY, out=tmp_path / "eager", overrides=overrides)
    a = Run(tmp_path / "compiled").load_checkpoint()["ema"]
    b = Run(tmp_path / "eager").load_checkpoint()["ema"]
    for name in a:
        if "running_" in name:
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
