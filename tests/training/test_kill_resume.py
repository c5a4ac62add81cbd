"""Kill -9 at random moments, checkpoint writes included, then resume: bit-exact with a straight
run.

A training subprocess (``python -m hierot train``) is killed with SIGKILL three times: while a
checkpoint temporary is being written, at a random moment after it has logged, and mid-write
again; each time it is resumed with ``hierot train --resume``. The final weights, the optimiser
state and every logged term of ``metrics.csv`` must equal those of an uninterrupted run of the
same seed bit for bit, every checkpoint present after a kill must load, and no temporary may be
left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

import hierot
from hierot.run import Run

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "data": {"name": "toy-hierarchy", "n_train": 128, "n_test": 16, "dims": [8, 4, 2]},
    "layers": [
        {"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
    ],
    # log_every does not divide checkpoint_every: a resume must carry the running sums over
    "train": {"batch_size": 16, "steps": 240, "log_every": 3, "checkpoint_every": 2,
              "progress": False},
}
KILLS = ["during a checkpoint write", "at a random moment", "during a checkpoint write"]
"""One process each (importing torch and hierot costs most of this test's ~20 s of CPU)."""


def terms(run: Path) -> list[dict[str, float]]:
    timing = ("wall_time", "step_time")
    return [{k: v for k, v in row.items() if k not in timing} for row in Run(run).read_metrics()]


def temporaries(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*") if p.is_file()]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hierot", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(process: subprocess.Popen, run: Path, how: str, rng: random.Random) -> bool:
    """SIGKILL ``process`` as ``how`` says, once it trains; False if it finished first."""
    checkpoints = run / "checkpoints"
    logged = run / "metrics.csv"
    size = logged.stat().st_size if logged.exists() else 0
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if how == "during a checkpoint write":
            if checkpoints.is_dir() and any(p.name.startswith(".step-")
                                            for p in checkpoints.iterdir()):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
        elif logged.exists() and logged.stat().st_size > size:
            time.sleep(rng.uniform(0, 0.05))
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.0005)
    assert process.poll() is not None, "the training process neither trained nor ended"
    return False


def test_kill_9_at_random_moments_then_resume_is_bit_exact(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    run = tmp_path / "killed"
    rng = random.Random(11)

    killed = []
    args = [str(spec_file), "--out", str(run)]
    for how in KILLS:
        process = start(args)
        if kill_when(process, run, how, rng):
            killed.append(how)
            for path in Run(run).checkpoint_files():  # atomic: none is ever cut short
                torch.load(path, weights_only=True)
        else:
            assert process.returncode == 0, process.stderr.read()
            break
        args = ["--resume", str(run)]
        assert (run / "spec.yaml").exists()
    process = start(["--resume", str(run)])
    assert process.wait(timeout=300) == 0, process.stderr.read()
    assert len(killed) >= 2, killed  # the run was really interrupted, mid-write too
    assert "during a checkpoint write" in killed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses: same kernels, same sums
    try:
        hierot.fit(SPEC, out=tmp_path / "straight")
    finally:
        torch.set_num_threads(threads)

    a, b = Run(run).load_checkpoint(), Run(tmp_path / "straight").load_checkpoint()
    assert a["step"] == b["step"] == SPEC["train"]["steps"]
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for index, state in b["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(a["optimizer"]["state"][index][key], value), (index, key)
    assert terms(run) == terms(tmp_path / "straight")
    assert [int(r["step"]) for r in Run(run).read_metrics()] == list(range(3, 241, 3))
    assert temporaries(run) == []
