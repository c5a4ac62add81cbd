"""A run directory is never damaged: resume checks, branching, fallback, temporaries, the NaN guard.

Each test stands for one fault found by probing hierot as a careless user would (issue 11, s. 2).
"""

from __future__ import annotations

import hashlib
import json
import resource
import signal
from pathlib import Path

import pytest
import torch
import yaml

import hierot
from hierot.cli import main
from hierot.errors import CheckpointError, HierotError, NonFiniteLossError, RunChangedError
from hierot.registry import ComponentOptions, divergences
from hierot.run import Run

TINY = {
    "data": {"name": "toy-hierarchy", "n_train": 128, "n_test": 32, "dims": [8, 4, 2]},
    "layers": [
        {"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
    ],
    "train": {"batch_size": 32, "steps": 6, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}


def snapshot(path: Path) -> dict[str, str]:
    """Every file under ``path`` with the hash of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return Run(run).load_checkpoint()["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def terms(run: Path) -> list[dict[str, float]]:
    """metrics.csv without its timings (the only columns a resume may change)."""
    timing = ("wall_time", "step_time")
    return [{k: v for k, v in row.items() if k not in timing} for row in Run(run).read_metrics()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted run of TINY: what every resumed run must equal bit for bit."""
    out = tmp_path_factory.mktemp("straight") / "run"
    hierot.fit(TINY, out=out)
    return out


def stopped_at(tmp_path: Path, steps: int = 4) -> Path:
    out = tmp_path / "run"
    hierot.fit(TINY, out=out, overrides=[f"train.steps={steps}"])
    return out


# -- the spec may change only what does not make another experiment --------------------------------
@pytest.mark.parametrize("override, field", [
    ("layers.0.encoder.hidden=[64, 64]", "layers.0.encoder.hidden: [16] -> [64, 64]"),
    ("layers.1.latent_shape=[3]", "layers.1.latent_shape: [2] -> [3]"),
    ("layers.0.decoder_head=deterministic", 'layers.0.decoder_head: "gaussian" -> "deterministic"'),
    ("optimizer.name=sgd", 'optimizer.name: "adam" -> "sgd"'),
    ("train.batch_size=16", "train.batch_size: 32 -> 16"),
    ("seed=1", "seed: 0 -> 1"),
    ("data.n_train=64", "data.n_train: 128 -> 64"),
    ("divergence={name: sinkhorn}", 'divergence.name: "mmd" -> "sinkhorn"'),
    ("objective.name=wae", 'objective.name: "stacked-wae" -> "wae"'),
])
def test_resume_refuses_another_experiment_and_changes_nothing(tmp_path, override, field):
    run = stopped_at(tmp_path)
    before = snapshot(run)
    with pytest.raises(RunChangedError) as info:
        hierot.fit(resume=run, overrides=[override, "train.steps=6"])
    message = str(info.value)
    assert field in message
    assert "train.steps" not in message.split("A resume may change")[0]  # allowed: not listed
    assert f"--init-from {run}" in message
    assert snapshot(run) == before
    hierot.fit(resume=run)  # the run still resumes as it was
    assert Run(run).load_checkpoint()["step"] == 4


def test_refusal_through_the_cli_exits_2_listing_every_field(tmp_path, capsys):
    run = stopped_at(tmp_path)
    code = main(["train", "--resume", str(run), "--set", "seed=3", "--set", "train.batch_size=8"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "seed: 0 -> 3" in err and "train.batch_size: 32 -> 8" in err


def test_allowed_changes_are_recorded_with_their_step(tmp_path, straight):
    run = stopped_at(tmp_path)
    hierot.fit(resume=run, overrides=["train.steps=6", "train.checkpoint_every=3"])
    (entry,) = Run(run).read_changes()
    assert entry["step"] == 4
    assert entry["changes"] == {"train.steps": [4, 6], "train.checkpoint_every": [2, 3]}
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    assert saved["train"]["steps"] == 6 and saved["train"]["checkpoint_every"] == 3
    assert_same_weights(run, straight)  # cadence does not change the numbers
    assert terms(run) == terms(straight)


# -- branching ---------------------------------------------------------------------------------
def test_init_from_loads_the_weights_into_a_new_run(tmp_path, straight):
    other = tmp_path / "branch"
    code = main(["train", str(tmp_path / "tiny.yaml"), "--init-from", str(straight), "--out",
                 str(other), "--set", "optimizer.lr=0.0005", "--set", "train.steps=1"])
    assert code == 0
    origin = json.loads((other / "origin.json").read_text())
    assert origin["init_from"] == str(straight.resolve())
    assert origin["checkpoint"] == "checkpoints/step-00000006.pt" and origin["step"] == 6
    # one step from the loaded weights, not from a fresh initialisation
    model = hierot.build(hierot.load_spec(TINY)).model
    Run(straight).init_weights(model)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}  # not BatchNorm's buffers
    after = weights(other)
    moved = max(float((after[k] - v).abs().max()) for k, v in start.items())
    assert 0 < moved < 3 * 0.0005  # an Adam step moves each weight by about lr


@pytest.fixture(autouse=True)
def _tiny_spec_file(tmp_path):
    """TINY as a file, ``tmp_path / "tiny.yaml"``, for the command line."""
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))


def test_init_from_another_architecture_names_the_parameters_and_writes_nothing(
    tmp_path, straight, capsys
):
    other = tmp_path / "branch"
    code = main(["train", str(tmp_path / "tiny.yaml"), "--init-from", str(straight), "--out",
                 str(other), "--set", "layers.0.encoder.hidden=[24]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "encoders.0.body.1.weight (16, 8) vs (24, 8)" in err
    assert not other.exists()


# -- runs without a checkpoint, temporaries --------------------------------------------------------
def killed_before_first_checkpoint(tmp_path: Path) -> Path:
    """What a kill before the first checkpoint leaves: spec, environment, some metrics, and a
    checkpoint temporary cut short."""
    run = Run(tmp_path / "run")
    run.create(hierot.load_spec(TINY))
    run.metrics_file.write_text("step,epoch,wall_time,total\n1,0,0.1,3.0\n2,0,0.2,2.")
    (run.checkpoint_dir / ".step-00000002.pt.k1ll3d").write_bytes(b"PK\x03\x04 partial")
    (run.path / ".metrics.csv.x9y8z7").write_text("step\n")
    return run.path


def test_a_run_without_checkpoint_resumes_from_step_0(tmp_path, straight, capsys):
    run = killed_before_first_checkpoint(tmp_path)
    hierot.fit(resume=run)
    assert "training it again from step 0 (seed 0)" in capsys.readouterr().err
    assert_same_weights(run, straight)
    assert terms(run) == terms(straight)
    assert not [p for p in run.rglob(".*") if p.is_file()]  # temporaries removed


def test_a_run_without_checkpoint_can_be_trained_again_into_its_directory(tmp_path, straight):
    run = killed_before_first_checkpoint(tmp_path)
    hierot.fit(TINY, out=run)
    assert_same_weights(run, straight)
    assert terms(run) == terms(straight)
    assert not [p for p in run.rglob(".*") if p.is_file()]


def test_a_run_with_a_checkpoint_is_still_not_overwritten(tmp_path):
    run = stopped_at(tmp_path)
    before = snapshot(run)
    assert main(["train", str(tmp_path / "tiny.yaml"), "--out", str(run)]) == 2
    assert snapshot(run) == before


# -- unreadable checkpoints ------------------------------------------------------------------------
class Foreign:
    """Not a tensor: torch.load(weights_only=True) refuses to unpickle it."""


def spoil(path: Path, how: str) -> str:
    """Damage the checkpoint ``path`` as ``how`` says; returns what the message must say."""
    if how == "empty":
        path.write_bytes(b"")
        return "empty file (0 bytes)"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "truncated or corrupt"
    if how == "pickled-object":
        torch.save({"step": 4, "model": Foreign()}, path)
        return "not a hierot checkpoint (it holds Python objects"
    if how == "foreign":
        torch.save({"weights": torch.ones(3)}, path)
        return "not a hierot checkpoint (no step and model weights"
    if how == "other-architecture":
        state = torch.load(path, weights_only=True)
        state["model"]["encoders.0.body.1.weight"] = torch.zeros(5, 8)
        torch.save(state, path)
        return "encoders.0.body.1.weight (5, 8) vs (16, 8)"
    if how == "non-finite":
        state = torch.load(path, weights_only=True)
        state["model"]["decoders.1.head.mean.bias"][0] = float("nan")
        torch.save(state, path)
        return "model.decoders.1.head.mean.bias holds non-finite values"
    raise AssertionError(how)


SPOILS = ["empty", "truncated", "pickled-object", "foreign", "other-architecture", "non-finite"]


@pytest.mark.parametrize("how", SPOILS)
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, straight, capsys, how):
    run = stopped_at(tmp_path)
    newest = run / "checkpoints" / "step-00000004.pt"
    said = spoil(newest, how)
    hierot.fit(resume=run, overrides=["train.steps=6"])
    err = capsys.readouterr().err
    assert str(newest) in err and said in err
    assert "resuming from checkpoints/step-00000002.pt (step 2)" in err
    assert "weights_only=False" not in err
    assert_same_weights(run, straight)
    assert terms(run) == terms(straight)
    (entry,) = Run(run).read_changes()
    assert entry["step"] == 2 and said in entry["skipped"][0]


@pytest.mark.parametrize("how", ["truncated", "pickled-object"])
def test_eval_and_sample_name_the_bad_checkpoint(tmp_path, capsys, how):
    run = stopped_at(tmp_path)
    newest = run / "checkpoints" / "step-00000004.pt"
    said = spoil(newest, how)
    for command in (["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.pt")],
                    ["eval", str(run), "--samples", "16"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert str(newest) in err and said in err and "Traceback" not in err
        assert "weights_only=False" not in err and "other checkpoints: steps 2" in err
    assert main(["sample", str(run), "--checkpoint", "2", "-n", "4", "--out",
                 str(tmp_path / "s.pt")]) == 0


def test_no_intact_checkpoint_is_refused_without_changing_anything(tmp_path):
    run = stopped_at(tmp_path)
    for path in (run / "checkpoints").glob("step-*.pt"):
        spoil(path, "truncated")
    before = snapshot(run)
    with pytest.raises(CheckpointError, match="no intact checkpoint to resume from"):
        hierot.fit(resume=run)
    assert snapshot(run) == before


# -- the non-finite guard ------------------------------------------------------------------------
@pytest.fixture
def nan_gradient():
    class NaNGradient:
        """A finite value (0) whose gradient is NaN: d sqrt(u) / du at u = 0, times 0."""

        calls = 0

        def __init__(self, options):
            pass

        def __call__(self, samples, prior_samples):
            NaNGradient.calls += 1
            value = (samples.mean() - prior_samples.mean()) ** 2
            if NaNGradient.calls >= 4:
                value = value + (samples - samples.detach()).pow(2).sum().sqrt()
            return value

    divergences.add("nan-gradient", NaNGradient, options=ComponentOptions)
    yield
    divergences.remove("nan-gradient")


def test_a_non_finite_gradient_stops_before_anything_is_saved(tmp_path, nan_gradient):
    spec = hierot.load_spec(TINY, ["divergence={name: nan-gradient}", "train.checkpoint_every=1"])
    with pytest.raises(NonFiniteLossError) as info:
        hierot.fit(spec, out=tmp_path / "run")
    message = str(info.value)
    assert message.startswith("step 4: non-finite gradient of encoders.")
    assert "the last finite checkpoint (step 3) is kept" in message
    run = Run(tmp_path / "run")
    assert [p.name for p in run.checkpoints()][-1] == "step-00000003.pt"
    assert [int(r["step"]) for r in run.read_metrics()] == [1, 2, 3]


def test_parameters_that_overflow_stop_the_run_and_are_never_saved(tmp_path):
    """SGD with lr 3e38: finite loss and gradients, infinite parameters after the step."""
    spec = hierot.load_spec(TINY,
                            ["optimizer={name: sgd, lr: 3.0e+38}", "train.checkpoint_every=1"])
    with pytest.raises(NonFiniteLossError, match=r"step \d+: non-finite (parameter|gradient)"):
        hierot.fit(spec, out=tmp_path / "run")
    run = Run(tmp_path / "run")
    for path in run.checkpoints():
        state = torch.load(path, weights_only=True)
        tensors = [*state["model"].values()] + [
            v for s in state["optimizer"]["state"].values() for v in s.values()]
        assert all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()), path


def test_parameters_that_overflow_between_checkpoints_stop_the_next_step(tmp_path):
    """Between checkpoints only the gradients are checked after a step: infinite parameters
    make the next step's loss non-finite, which stops the run before anything is saved."""
    spec = hierot.load_spec(TINY, ["optimizer={name: sgd, lr: 3.0e+38}", "train.steps=20",
                                   "train.checkpoint_every=10"])
    with pytest.raises(NonFiniteLossError, match=r"^step 2: non-finite objective term"):
        hierot.fit(spec, out=tmp_path / "run")
    assert Run(tmp_path / "run").checkpoints() == []


def test_infinite_optimizer_state_is_caught(tmp_path):
    """Adam's second moment overflows (grad**2 > 3.4e38) while the parameters stay finite."""
    spec = hierot.load_spec(TINY, [("weights={schedule: explicit, reconstruction: [1.0e+25, 1],"
                                   " match: 1}"), "train.checkpoint_every=1"])
    with pytest.raises(NonFiniteLossError, match="non-finite (optimiser state|gradient|parameter)"):
        hierot.fit(spec, out=tmp_path / "run")
    for path in Run(tmp_path / "run").checkpoints():
        state = torch.load(path, weights_only=True)
        for s in state["optimizer"]["state"].values():
            assert all(torch.isfinite(v).all() for v in s.values()), path


# -- a full disk ---------------------------------------------------------------------------------
@pytest.fixture
def file_size_limit():
    """``file_size_limit(n)``: writes past n bytes fail with EFBIG (RLIMIT_FSIZE, SIGXFSZ
    ignored), as writes on a full disk fail with ENOSPC; lifted after the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(n: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


def test_a_full_disk_during_a_checkpoint_write_loses_nothing(tmp_path, capsys, file_size_limit):
    """A checkpoint write that fails mid-file: a clean message, exit 2, no temporary left, the
    earlier files intact, and the run resumes once there is room."""
    run = tmp_path / "run"
    hierot.fit(TINY, out=run, overrides=["train.steps=2"])
    size = (run / "checkpoints" / "step-00000002.pt").stat().st_size
    before = snapshot(run)
    file_size_limit(size // 2)
    code = main(["train", "--resume", str(run), "--set", "train.steps=4"])
    file_size_limit(resource.RLIM_INFINITY)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "File too large" in err and "everything written before is intact" in err
    assert f"error: {run / 'checkpoints' / 'step-00000004.pt'}: File too large" in err
    after = snapshot(run)
    assert after["checkpoints/step-00000002.pt"] == before["checkpoints/step-00000002.pt"]
    assert not [p for p in run.rglob(".*") if p.is_file()]
    hierot.fit(resume=run, overrides=["train.steps=4"])
    assert Run(run).load_checkpoint()["step"] == 4


def test_a_budget_below_the_step_reached_is_refused(tmp_path):
    run = stopped_at(tmp_path)
    before = snapshot(run)
    with pytest.raises(HierotError, match="reached step 4; a budget of 3 steps"):
        hierot.fit(resume=run, overrides=["train.steps=3"])
    assert snapshot(run) == before


def test_huge_finite_values_are_not_mistaken_for_non_finite_ones():
    """The fused check takes L2 norms, which overflow above ~1.8e19: huge finite parameters make
    a norm infinite, the by-name check finds nothing non-finite, and training goes on."""
    from hierot.training.runtime import single_process
    from hierot.training.trainer import Trainer

    trainer = Trainer(hierot.build(hierot.load_spec(TINY)), None, single_process("cpu"))
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(1e30)
    trainer._check_finite(torch.zeros(0))  # does not raise
    with torch.no_grad():
        next(trainer.model.parameters())[0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="non-finite parameter encoders.0.body.1.weight"):
        trainer._check_finite(torch.zeros(0))


def test_the_device_may_change_on_resume_and_is_recorded(tmp_path):
    run = stopped_at(tmp_path)
    assert main(["train", "--resume", str(run), "--device", "cpu", "--steps", "6"]) == 0
    (entry,) = Run(run).read_changes()
    assert entry["changes"] == {"train.steps": [4, 6], "device": ["auto", "cpu"]}


# -- a damaged metrics.csv is named before anything is written (issue 27, defect 4) ----------------
DAMAGES = {
    "binary": lambda text: b"\x89PNG\r\n\x1a\n\xff\xfe" + text,
    "ascii-garbage-line": lambda text: b"garbage\n" + text,
    "ascii-garbage-column": lambda text: b"garbage," + text,
    "a word in a cell": lambda text: text.replace(b"\n2,", b"\n2,hello,", 1),
    "a short row before the last": lambda text: text.replace(b"\n3,", b"\n3\n3,", 1),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_resume_with_a_damaged_metrics_file_changes_nothing(tmp_path, capsys, damage):
    run = stopped_at(tmp_path)
    metrics = Run(run).metrics_file
    metrics.write_bytes(DAMAGES[damage](metrics.read_bytes()))
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--set", "train.steps=6",
                 "--set", "train.log_every=2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{metrics} is damaged" in err
    assert "Nothing was changed" in err
    assert snapshot(run) == before  # spec.yaml, changes.jsonl, metrics.csv: byte-identical
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{metrics} is damaged" in err


def test_a_last_line_cut_short_by_a_crash_is_dropped_not_refused(tmp_path, straight):
    run = stopped_at(tmp_path)
    metrics = Run(run).metrics_file
    text = metrics.read_bytes()
    metrics.write_bytes(text + text.splitlines()[-1][:5])  # step 5's row, cut short mid-write
    assert [r["step"] for r in Run(run).read_metrics()] == [1, 2, 3, 4]
    hierot.fit(resume=run, overrides=["train.steps=6"])
    assert terms(run) == terms(straight)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_a_run_writes_follows_the_umask(tmp_path, umask):
    """spec.yaml, summary.json, checkpoints were 0600 while metrics.csv was 0644 (issue 27)."""
    import os
    import stat

    old = os.umask(umask)
    try:
        run = stopped_at(tmp_path, steps=2)
        hierot.fit(resume=run, overrides=["train.steps=4"])
    finally:
        os.umask(old)
    modes = {str(p.relative_to(run)): stat.S_IMODE(p.stat().st_mode)
             for p in run.rglob("*") if p.is_file()}
    assert {"spec.yaml", "summary.json", "environment.json", "metrics.csv", "changes.jsonl",
            "checkpoints/step-00000004.pt"} <= set(modes)
    assert set(modes.values()) == {0o666 & ~umask}, modes
