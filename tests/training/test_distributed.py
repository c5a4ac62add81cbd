"""Data-parallel training: 2 CPU processes (gloo, loopback) against one process on the same batches.

One torchrun launch (``tests/training/_distributed_worker.py``) runs every distributed scenario;
the test compares its run directories with single-process runs made here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hierot
from hierot.errors import HierotError
from hierot.run import Run
from hierot.training.runtime import Runtime, single_process

sys.path.insert(0, str(Path(__file__).parent))
import _distributed_worker as worker

WORKER = Path(worker.__file__)
LAUNCH_TIMEOUT_S = 600
"""The whole launch takes about a minute on a 2-core machine at load average 10-15 (CPU)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """(the worker's runs, the same specs trained by one process here, meanwhile)."""
    launched, single = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("single")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(WORKER),
               str(launched)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    # the launch writes to a file (kept beside its runs, whole, for a failure) and runs in its
    # own session, so that nothing it started outlives the fixture: killing torchrun alone, as
    # on a timeout, leaves its ranks running on a loaded machine
    log = launched / "torchrun.log"
    with log.open("w") as out, subprocess.Popen(command, env=env, stdout=out,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True) as process:
        try:
            hierot.fit(worker.DETERMINISTIC, out=single / "deterministic")
            hierot.fit(worker.FLAT, out=single / "flat")
            process.wait(timeout=LAUNCH_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, log.read_text()[-8000:]
    return launched, single


@pytest.fixture(scope="module")
def launched(runs) -> Path:
    return runs[0]


@pytest.fixture(scope="module")
def single(runs) -> Path:
    return runs[1]


def state(path: Path) -> dict[str, torch.Tensor]:
    return Run(path).load_checkpoint()["model"]


def assert_same(a: dict, b: dict, **tolerance) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        torch.testing.assert_close(value, b[name], msg=name, **tolerance)


def differs(a: dict, b: dict) -> bool:
    return any(not torch.allclose(a[n].float(), b[n].float(), atol=1e-5) for n in a)


def cli_run(root: Path) -> Path:
    (path,) = (root / "runs").iterdir()  # one run directory, named by rank 0
    return path


def test_two_processes_equal_one_on_the_global_batch(launched, single):
    ours = state(cli_run(launched))
    assert_same(ours, state(single / "deterministic"), rtol=1e-5, atol=2e-6)


def test_logged_metrics_are_global_batch_means(launched, single):
    ours = Run(cli_run(launched)).read_metrics()
    theirs = Run(single / "deterministic").read_metrics()
    assert [r["step"] for r in ours] == [1, 2, 3, 4]
    for a, b in zip(ours, theirs):
        for name in ("rec_x", "rec_z1", "match_z2", "total"):
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-6), name


def test_resume_continues_exactly(launched):
    assert_same(state(launched / "stopped"), state(cli_run(launched)), rtol=0, atol=0)
    assert [r["step"] for r in Run(launched / "stopped").read_metrics()] == [1, 2, 3, 4]
    assert Run(launched / "stopped").load_checkpoint()["runtime"]["world_size"] == 2


def test_resume_with_own_noise_continues_exactly(launched):
    assert_same(state(launched / "gaussian-stopped"), state(launched / "gaussian"), rtol=0, atol=0)


def test_flat_objective_with_unused_encoders(launched, single):
    ours, theirs = state(launched / "flat"), state(single / "flat")
    assert_same({n: v for n, v in ours.items() if "running_var" not in n},
                {n: v for n, v in theirs.items() if "running_var" not in n}, rtol=1e-4, atol=1e-5)
    # encoders above z_1 get no gradient in Eq. (7): unchanged from their initialisation
    initial = hierot.build(hierot.load_spec(worker.FLAT)).model.state_dict()
    upper = [n for n in initial if n.startswith("encoders.1.") and "running" not in n]
    assert_same({n: ours[n] for n in upper}, {n: initial[n] for n in upper}, rtol=0, atol=0)


def test_unsynchronised_batchnorm_and_local_divergence_differ(launched, single):
    reference = state(single / "deterministic")
    assert differs(state(launched / "unsynced-bn"), reference)
    assert differs(state(launched / "local"), reference)


def test_noise_is_own_before_the_gather_and_shared_after(launched):
    for rank in (0, 1):
        seen = json.loads((launched / f"rank{rank}.json").read_text())
        assert seen["runtime"] == "DistributedRuntime"
        assert seen["cli_exit"] == 0
        assert seen["noise"] == {"own_differs": True, "shared_equal": True,
                                 "shared_is_the_plain_stream": True, "stream_continues": True}


def test_a_non_finite_objective_on_one_rank_stops_every_rank(launched):
    rank0, rank1 = (json.loads((launched / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank1["stop_together"] == "not finite"  # the trainer raises, naming the terms
    assert "non-finite objective on data-parallel rank(s) 1" in rank0["stop_together"]


def test_weight_averages_are_the_same_on_every_rank_and_equal_one_process(launched):
    """``train.ema`` under DDP (with ``train.skip_update`` on): the averages need no
    communication, as every rank holds the same parameters after each step; their BatchNorm
    statistics, recomputed on each rank's shard of the same batches through the synchronised
    BatchNorm, are one process's on the whole batches."""
    from hierot.training.trainer import Trainer

    seen = json.loads((launched / "rank0.json").read_text())["ema"]
    assert seen["same"] and seen["grad_norm_logged"]
    trainer = Trainer(hierot.build(hierot.load_spec(worker.DETERMINISTIC, worker.EMA)),
                      None, single_process("cpu"))
    trainer.fit()
    ours = {n: torch.tensor(v) for n, v in seen["rank0"].items()}
    theirs = {**dict(zip(trainer.ema.names, trainer.ema.averages)), **trainer.ema.statistics}
    assert any("running_var" in n for n in theirs)
    assert_same(ours, theirs, rtol=1e-5, atol=2e-6)
    assert differs(ours, {n: p.detach() for n, p in trainer.model.named_parameters()})


def test_a_bad_batch_on_one_rank_is_skipped_by_every_rank(launched):
    for rank in (0, 1):
        seen = json.loads((launched / f"rank{rank}.json").read_text())["skip_together"]
        assert seen == {"steps": 4, "skipped": 1, "finite": True, "same": True}


def test_batch_not_divisible_by_world_size_is_an_error(launched):
    seen = json.loads((launched / "rank0.json").read_text())
    assert "33 cannot be split evenly over 2" in seen["odd_batch"]


def test_resume_with_another_world_size_is_an_error(launched, tmp_path):
    import shutil

    copy = tmp_path / "stopped"
    shutil.copytree(launched / "stopped", copy)
    with pytest.raises(HierotError, match="written by 2 data-parallel process"):
        hierot.fit(resume=copy, overrides=["train.steps=6"])


def test_single_process_runtime_is_unchanged():
    runtime = single_process("cpu")
    assert type(runtime) is Runtime and runtime.world_size == 1
    assert runtime.broadcast("x") == "x" and runtime.mean({"a": 1.5}) == {"a": 1.5}
    assert runtime.state() == {"world_size": 1}
    with pytest.raises(HierotError, match="resume with the same world size"):
        runtime.load_state({"world_size": 4})
