"""``python -m benchmarks gpu_check``: nothing to do without CUDA; its dry run on the CPU runs
the same checks at a tiny size, so the command's logic is tested where no GPU is."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_check
from hierot.registry import divergences

LEAVE_OUT = ["--skip", "compile", "--skip", "ddp-torchrun", "--skip", "train-step-ratios"]


def test_without_cuda_there_is_nothing_to_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    assert "nothing to check" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_the_dry_run_checks_every_path_the_cpu_has(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--out", str(tmp_path), *LEAVE_OUT]) == 0
    report = json.loads((tmp_path / "cpu-dry-run.json").read_text())
    status = {r["check"]: r["status"] for r in report["checks"]}
    detail = {r["check"]: r["detail"] for r in report["checks"]}
    builtin = [e.name for e in divergences.entries() if e.source == "hierot"]
    assert {f"divergence-{n}" for n in builtin} <= {k for k, v in status.items() if v == "ok"}
    assert status["precision-fp32"] == status["precision-bf16"] == "ok"
    assert status["precision-fp16"] == status["fused-adam"] == "skipped"  # CUDA-only
    assert status["compile"] == status["ddp-torchrun"] == "skipped"  # --skip
    assert detail["eval-and-sample"]["model_weights"] == "ema"
    assert detail["resume"] == {"repeatable": True, "max_abs_difference_resumed": 0.0}
    assert report["failed"] == []
    assert "| resume | ok |" in (tmp_path / "cpu-dry-run.md").read_text()


def test_a_failing_check_is_recorded_and_the_exit_status_is_1(tmp_path, monkeypatch):
    """A spec the checks cannot train: every check that trains fails, each is recorded with
    its error, and the command still writes its report."""
    monkeypatch.setattr(gpu_check, "TINY", {**gpu_check.TINY, "train": {"steps": 0}})
    code = gpu_check.main(["--device", "cpu", "--out", str(tmp_path), *LEAVE_OUT,
                           "--skip", "precision-*", "--skip", "divergence-*"])
    assert code == 1
    report = json.loads((tmp_path / "cpu-dry-run.json").read_text())
    failed = {r["check"]: r["detail"] for r in report["checks"] if r["status"] == "failed"}
    assert set(report["failed"]) == set(failed) == {"eval-and-sample", "resume"}
    assert all("train.steps" in d for d in failed.values())


@pytest.mark.slow
def test_the_dry_run_launches_torchrun_and_times_the_step(tmp_path):
    """The two checks that start other programs: ``torchrun`` (gloo standing in for nccl) and
    the train_step benchmark, on the smallest case."""
    code = gpu_check.main(["--device", "cpu", "--out", str(tmp_path), "--skip", "compile",
                           "--skip", "precision-*", "--skip", "divergence-*", "--skip", "resume",
                           "--skip", "eval-and-sample", "--ratio-case", "quickstart:16",
                           "--ratio-repeats", "2"])
    assert code == 0
    report = json.loads((tmp_path / "cpu-dry-run.json").read_text())
    detail = {r["check"]: r["detail"] for r in report["checks"] if r["status"] == "ok"}
    assert detail["ddp-torchrun"] == {"backend": "gloo", "step": 4, "world_size": 1}
    rows = detail["train-step-ratios"]["rows"]
    assert [r["variant"] for r in rows] == ["fp32", "bf16"]
    assert all(r["ratio"] > 0 for r in rows)
