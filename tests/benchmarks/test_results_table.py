"""``python -m benchmarks results_table``: its arms, its shards and its resumption.

The resumption decides what a session trains again (hours of CPU at full size), so it is tested
for real in the smoke mode: runs trained, records read back, one run's last checkpoint removed
as a kill would leave it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's `benchmarks`

import hierot
from benchmarks import results_table as table


def test_arms_are_the_issues_table():
    arms = table.arms()
    assert len(arms) == 2 * (2 * 2 + 3)  # data sets x (StackedWAEs x divergences + 3 others)
    assert set(arms) == {f"{d}/{m}" for d in ("mnist-5k", "fashion-mnist") for m in (
        "stackedwae-mmd", "stackedwae-sinkhorn", "stackedwae-z8-mmd", "stackedwae-z8-sinkhorn",
        "wae", "hvae", "lvae")}
    assert arms["mnist-5k/hvae"] == ("mnist-hvae.v1", ["data={name: mnist-5k}"])
    assert arms["fashion-mnist/stackedwae-z8-sinkhorn"][0] == "fashion-stackedwae-z8.v1"
    assert table.select(["fashion-mnist/stackedwae*"]) == [
        "fashion-mnist/stackedwae-mmd", "fashion-mnist/stackedwae-sinkhorn",
        "fashion-mnist/stackedwae-z8-mmd", "fashion-mnist/stackedwae-z8-sinkhorn"]
    with pytest.raises(ValueError, match="matches no arm"):
        table.select(["mnist/*"])


@pytest.mark.parametrize("arm", list(table.arms()))
def test_every_arm_resolves_with_the_budget_and_keeps_its_preset(arm):
    """The budget replaces the preset's epochs by steps without dropping its other ``train``
    fields (the z8 presets' 512 prior samples); the VAEs warm up over a third of it."""
    preset, extra = table.arms()[arm]
    budget = table.MODES["full"]
    spec = hierot.load_spec(preset, table.overrides(preset, extra, budget, seed=2))
    shipped = hierot.load_spec(preset)
    assert spec.seed == 2 and spec.train.steps == budget["steps"] and spec.train.epochs is None
    assert spec.train.prior_samples == shipped.train.prior_samples
    assert spec.layers == shipped.layers  # the paper's widths
    assert spec.data.name == arm.split("/")[0]
    assert spec.divergence.name == ("sinkhorn" if arm.endswith("sinkhorn") else "mmd")
    if spec.objective.name in table.VAES:
        assert spec.objective.warmup_steps == budget["steps"] // 3


def test_bad_arms_or_shards_exit_2_naming_the_option(capsys):
    for argv in (["--only", "mnist/*"], ["--shard", "3/2"]):
        with pytest.raises(SystemExit) as stop:
            table.main([*argv, "--table", "--nice", "0"])
        assert stop.value.code == 2
        assert argv[0] in capsys.readouterr().err


def test_shards_split_the_runs_without_overlap():
    jobs = [{"record": str(i)} for i in range(7)]
    parts = [table.shard(jobs, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(j["record"] for p in parts for j in p) == [str(i) for i in range(7)]
    assert [len(p) for p in parts] == [3, 2, 2]
    for bad in ("0/3", "4/3", "a/b", "2"):
        with pytest.raises(ValueError, match="--shard"):
            table.shard(jobs, bad)


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_smoke_run_resumes_where_it_stopped(tmp_path, one_thread):
    args = ["--smoke", "--jobs", "1", "--nice", "0", "--out", str(tmp_path)]
    records = tmp_path / "records" / "smoke" / "mnist-5k"
    first, second = records / "stackedwae-mmd" / "seed-0.json", records / "wae" / "seed-0.json"
    run = tmp_path / "runs" / "smoke" / "mnist-5k" / "stackedwae-mmd" / "seed-0"

    assert table.main([*args, "--max-runs", "1"]) == 0  # stopped after one arm
    assert first.is_file() and not second.exists()
    assert "**Partial**: 1 of 2 runs done (missing: mnist-5k/wae (seed 0))" in (
        tmp_path / "smoke.md").read_text()
    kept = first.read_text()
    checkpoints = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("*.pt")}
    two, four = sorted(checkpoints)  # step-00000002.pt, step-00000004.pt
    assert (two, four) == ("step-00000002.pt", "step-00000004.pt")

    assert table.main(args) == 0  # the rerun trains only the other arm
    assert first.read_text() == kept
    assert {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("*.pt")} == checkpoints
    record = json.loads(second.read_text())
    assert record["arm"] == "mnist-5k/wae" and record["step_time"]["steps"] == 4
    assert record["where"] == "smoke/mnist-5k/wae/seed-0"
    protocol = record["eval_json"]["sample_quality"]["protocol"]  # eval.json kept whole
    assert protocol["version"] == "hierot-eval/2" and protocol["samples"] == 100
    assert str(tmp_path) not in second.read_text()  # records are committed: no local paths
    assert set(record["eval"]["probe"]) == {f"z{i}" for i in range(1, 6)}
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["progress"] == {"done": 2, "planned": 2, "missing": []}
    assert set(report["summary"]) == {"mnist-5k/stackedwae-mmd", "mnist-5k/wae"}
    assert "Complete: 2 of 2 runs done." in (tmp_path / "smoke.md").read_text()
    assert report["grids"] == {"mnist-5k": "smoke-samples-mnist-5k.png"}
    assert "(smoke-samples-mnist-5k.png)" in (tmp_path / "smoke.md").read_text()
    from PIL import Image

    with Image.open(tmp_path / "smoke-samples-mnist-5k.png") as grid:
        assert grid.width > 12 * 28 and grid.height > 2 * 28  # 12 samples a row, 2 arms
    assert report["commits"] == [record["commit"]] and record["commit"] == table.commit()

    # Killed in training after its step-2 checkpoint: continued from there, not from step 0.
    first.unlink()
    (run / "checkpoints" / four).unlink()
    assert table.main(args) == 0
    assert json.loads(first.read_text())["step_time"]["steps"] == 4
    assert (run / "checkpoints" / two).stat().st_mtime_ns == checkpoints[two]
    assert (run / "checkpoints" / four).is_file()
    assert json.loads(second.read_text()) == record  # the finished arm is left alone
