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
from benchmarks import _runs as runs
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
    if spec.objective.name in runs.VAE_OBJECTIVES:
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

    assert table.main([*args, "--docs", str(tmp_path / "docs")]) == 0  # trains the other arm
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
    check_page(tmp_path, report, {"stackedwae-mmd": json.loads(kept), "wae": record})

    # Killed in training after its step-2 checkpoint: continued from there, not from step 0.
    first.unlink()
    (run / "checkpoints" / four).unlink()
    assert table.main(args) == 0
    assert json.loads(first.read_text())["step_time"]["steps"] == 4
    assert (run / "checkpoints" / two).stat().st_mtime_ns == checkpoints[two]
    assert (run / "checkpoints" / four).is_file()
    assert json.loads(second.read_text()) == record  # the finished arm is left alone


def check_page(out: Path, report: dict, records: dict[str, dict]) -> None:
    """The smoke run's page: the protocol's metrics with their intervals, KID, and verdicts that
    are ``hierot compare``'s on the records' own ``eval.json``; its copy in the docs."""
    from benchmarks._layer_rows import layer_rows
    from benchmarks._layer_rows import table as render
    from benchmarks._results_markdown import format_stat
    from hierot.evaluation.compare import compare_results

    text = (out / "smoke.md").read_text()
    groups = {arm: [r["eval_json"] for r in [record]] for arm, record in records.items()}
    expected = compare_results(groups, baseline="wae", sampler="prior")
    found = report["datasets"]["mnist-5k"]
    verdict = expected["groups"]["stackedwae-mmd"]["against_baseline"]
    assert found["verdicts"]["wae"]["prior"] == {"stackedwae-mmd": verdict}
    assert found["verdicts"]["stackedwae-mmd"]["prior"]["wae"] == compare_results(
        groups, baseline="stackedwae-mmd", sampler="prior")["groups"]["wae"]["against_baseline"]
    assert "### Verdicts" in text and "Against `wae`, sampler `prior`:" in text
    assert f"| stackedwae-mmd | {verdict['fcd']} | {verdict['kid']} | " in text
    protocol = records["wae"]["eval_json"]["sample_quality"]["protocol"]
    assert f"Protocol `hierot-eval/2`: features `classifier` (shipped, sha256 " \
           f"`{protocol['features']['sha256'][:12]}`), N = 100 samples" in text
    for metric, name in (("kid", "KID"), ("precision", "precision"), ("fcd", "FD")):
        block = records["wae"]["eval_json"]["sample_quality"]["samplers"]["prior"]["ancestral"]
        low, high = block["intervals"][metric]  # one seed: the run's own bootstrap interval
        cell = format_stat(expected["groups"]["wae"]["metrics"][metric])
        assert cell.endswith(f" [{low:.4g}, {high:.4g}]")
        assert f"| {name} (prior) | " in text and f" | {cell} |" in text
    per_layer = records["wae"]["eval_json"]["sample_quality"]["per_layer"]["layers"]
    assert f"| wae | z5 | {per_layer['z5']['ancestral']['fcd']:.4g} [" in text
    # the per-layer rows are the shared renderer's, the WAEs' KL left out
    arms = {a.split("/")[1]: s for a, s in report["summary"].items()}
    rows = render(arms, layer_rows(arms))[2:]
    assert len(rows) == 4 * 5 and all(line in text for line in rows if not line.startswith("| KL"))
    assert "| KL z1 (nats; VAE family) | n/a | n/a |" in text
    docs = (out / "docs" / "results-table.md").read_text()  # --docs: a heading level down
    assert docs.startswith("## Results table (smoke mode)") and "\n### mnist-5k\n" in docs
    assert "](img/results/smoke-samples-mnist-5k.png)" in docs
    assert (out / "docs" / "img" / "results" / "smoke-samples-mnist-5k.png").is_file()


def test_objectives_and_the_page_render_the_same_per_layer_rows():
    """One renderer: the same summary gives the same rows in both reports; a WAE's KL hidden
    on the page (its callback), shown by ``objectives`` (which explains how to read it)."""
    from benchmarks import _results_markdown as page
    from benchmarks import objectives

    stat = lambda mean, std=None: {"mean": mean, "std": std}
    summary = {"rec_mse": {"z1": stat(0.01, 0.001), "z2": stat(0.05)},
               "probe": {"z1": stat(0.9, 0.01), "z2": stat(0.6, 0.02)},
               "active": {"z1": stat(12.0, 1.0), "z2": stat(3.0, 0.0)},
               "active_dims": {"z1": 16, "z2": 4}, "kl": {"z1": stat(5.5, 0.2), "z2": stat(0.01)},
               "seeds": 2, "fcd": stat(30.0), "top_mmd": stat(0.1), "log_px": stat(None),
               "elbo": stat(None), "step_s": stat(0.2), "probe_chance": 0.11,
               "fcd_floor": stat(1.0)}
    report = {"mode": "quick", "created": "now", "wall_time_s": 1, "command": "python -m x",
              "machine": {"packages": {}, "plugins": {}, "load_average_at_start": (1, 1, 1),
                          "torch_threads": 1, "processor": "x", "platform": "p",
                          "cpu_count": 2, "gpu": None, "cuda": None, "python": "3"},
              "presets": {"wae": "mnist-wae.v1", "hvae": "mnist-hvae.v1"},
              "budget": {"data": {"name": "mnist-5k"}, "shrink": 4, "steps": 10,
                         "batch_size": 128, "seeds": [0, 1], "warmup": 3},
              "summary": {"wae": {**summary, "objective": "wae"},
                          "hvae": {**summary, "objective": "hvae"}}}
    text = objectives.markdown(report)
    page_lines = page.dataset_table(
        {k: {**s, "model": k} for k, s in report["summary"].items()},
        {"samplers": {}, "floor": {}})
    assert "| rec MSE/pixel from z1 | 0.01 ± 0.001 | 0.01 ± 0.001 |" in page_lines
    assert "| active units z2 (of 4) | 3 ± 0 | 3 ± 0 |" in page_lines
    assert "| KL z1 (nats; VAE family) | n/a | 5.5 ± 0.2 |" in page_lines
    assert "| KL z1 (nats) | 5.5 ± 0.2 | 5.5 ± 0.2 |" in text
    shared = [line for line in page_lines if line.startswith(("| rec", "| probe", "| active"))]
    assert len(shared) == 6 and all(line in text.splitlines() for line in shared)
