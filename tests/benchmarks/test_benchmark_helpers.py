"""The benchmarks' own bookkeeping: the stacked-coverage verdict and the reuse of earlier runs.

These decide what a committed result says (which arm "wins on both"; which runs are trained
again), so they are tested like the package.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's `benchmarks`

from benchmarks import stacked_coverage as coverage


def stat(mean: float, std: float | None) -> dict:
    return {"mean": mean, "std": std, "n": 3, "values": []}


def arm(precision, density, recall, cover, class_tv, probe_top=0.6, rec=(0.01, 0.05)) -> dict:
    samples = {"prior / ancestral": {"precision": stat(*precision), "density": stat(*density),
                                     "recall": stat(*recall), "coverage": stat(*cover),
                                     "class_tv": stat(*class_tv)}}
    return {"samples": samples, "probe": {"z1": stat(0.85, 0.01), "z2": stat(probe_top, 0.02)},
            "rec_mse": {"z1": stat(rec[0], 0.0001), "z2": stat(rec[1], 0.001)}}


FLAT = arm((0.83, 0.01), (0.70, 0.01), (0.73, 0.05), (0.78, 0.02), (0.11, 0.03), probe_top=0.17,
           rec=(0.01, 0.09))
STACKED = arm((0.95, 0.03), (1.22, 0.14), (0.08, 0.05), (0.57, 0.10), (0.27, 0.07), probe_top=0.48)


@pytest.mark.parametrize("a, b, direction, expected", [
    (stat(0.9, 0.01), stat(0.8, 0.02), +1, "better"),
    (stat(0.9, 0.05), stat(0.8, 0.05), +1, "tie"),      # a gap of exactly the summed spread ties
    (stat(0.9, 0.05), stat(0.8, 0.06), +1, "tie"),
    (stat(0.2, 0.01), stat(0.1, 0.01), -1, "worse"),    # lower is better (class TV)
    (stat(0.2, None), stat(0.1, None), +1, "better"),   # one seed: no spread
    (stat(None, None), stat(0.1, 0.01), +1, "-"),
])
def test_compare_needs_a_gap_beyond_the_summed_spread(a, b, direction, expected):
    assert coverage.compare(a, b, direction) == expected


def test_welch_p_matches_a_hand_computed_t_test():
    # means 1 and 0, sd 1 each, n 3 each: t = 1 / sqrt(2/3) = 1.2247 on 4 degrees of freedom
    assert coverage.welch_p(stat(1.0, 1.0), stat(0.0, 1.0)) == pytest.approx(0.2879, abs=1e-4)
    assert coverage.welch_p(stat(1.0, None), stat(0.0, None)) is None


def test_verdict_of_the_published_stacked_wae_and_of_an_arm_that_wins():
    published = coverage.verdict(STACKED, FLAT, STACKED)
    assert (published["precision"], published["recall"],
            published["class_tv"]) == ("better", "worse", "worse")
    assert not published["wins_on_both"] and published["keeps_hierarchy"]

    winner = arm((0.92, 0.02), (1.05, 0.03), (0.70, 0.03), (0.92, 0.01), (0.09, 0.01))
    v = coverage.verdict(winner, FLAT, STACKED)
    assert (v["precision"], v["recall"], v["coverage"],
            v["class_tv"]) == ("better", "tie", "better", "tie")
    assert v["wins_on_both"] and v["keeps_hierarchy"]

    assert v["welch_p"]["precision"] < 0.01 and v["welch_p"]["recall"] > 0.05

    weak_top = arm((0.92, 0.02), (1.05, 0.03), (0.70, 0.03), (0.92, 0.01), (0.09, 0.01),
                   probe_top=0.40)
    assert not coverage.verdict(weak_top, FLAT, STACKED)["keeps_hierarchy"]
    blurry = arm((0.92, 0.02), (1.05, 0.03), (0.70, 0.03), (0.92, 0.01), (0.09, 0.01),
                 rec=(0.01, 0.06))
    # z2 worse than 0.05 ± 0.001
    assert not coverage.verdict(blurry, FLAT, STACKED)["keeps_hierarchy"]


def record(seed: int, overrides: list[str]) -> dict:
    return {"seed": seed, "overrides": overrides, "eval": {"x": seed}, "run_dir": f"runs/s{seed}"}


def test_reuse_takes_only_runs_with_the_same_preset_seed_and_overrides(tmp_path):
    same, other = ["seed=0", "train={steps: 10}"], ["seed=0", "train={steps: 20}"]
    report = {"presets": {"stacked": coverage.STACKED, "flat": coverage.FLAT},
              "runs": {"stacked": [record(0, same), {"seed": 1, "overrides": same, "error": "x"}],
                       "flat": [record(0, other)]}}
    path = tmp_path / "full.json"
    path.write_text(json.dumps(report))
    earlier = coverage.reusable(path)
    assert set(earlier) == {("stacked", 0), ("flat", 0)}  # the failed run is not reused

    job = lambda preset, overrides, seed: (
        preset, overrides, tmp_path / "r", None, False, tmp_path, seed)
    reused = coverage.earlier_record(job(coverage.STACKED, same, 0), "stacked", earlier)
    assert reused["eval"] == {"x": 0} and reused["reused_from"] == str(path)
    assert "preset" not in reused
    assert coverage.earlier_record(job(coverage.STACKED, same, 1), "stacked", earlier) is None
    assert coverage.earlier_record(job(coverage.FLAT, same, 0), "flat",
                                   earlier) is None  # overrides differ
    assert coverage.earlier_record(job(coverage.FLAT, other, 0), "stacked",
                                   earlier) is None  # preset differs
    assert coverage.reusable(None) == {}

    report["runs"]["stacked"][0]["reused_from"] = "first.json"  # reused twice: the first origin
    path.write_text(json.dumps(report))
    assert coverage.reusable(path)["stacked", 0]["reused_from"] == "first.json"


def test_vae_arms_take_the_objectives_benchmarks_runs(tmp_path):
    """The ``hvae`` and ``lvae`` arms carry the KL warm-up ``objectives`` gives them (a third of
    the steps), so their jobs have the same overrides as that benchmark's runs and reuse them."""
    from benchmarks import _runs as runs
    from benchmarks import objectives

    budget = {"steps": 2500, "seeds": [0], "shrink": 1, "log_every": 100, "batch_size": 128,
              "data": {"name": "mnist-5k"}}
    ours, _ = runs.seed_jobs({a: coverage.with_warmup(a, 2500) for a in ("hvae", "lvae")},
                             budget, tmp_path, device=None, out=tmp_path)
    theirs, _ = runs.seed_jobs(
        {k: (objectives.PRESETS[k], ["objective.warmup_steps=833"]) for k in ("hvae", "lvae")},
        budget, tmp_path, device=None, out=tmp_path)
    assert [j[:2] for j in ours] == [j[:2] for j in theirs]
    assert "objective.warmup_steps=833" in ours[0][1]
    assert coverage.with_warmup("flat", 2500) == coverage.ARMS["flat"]  # the WAEs: none


def test_verdicts_against_a_named_arm():
    ok = {"flat": FLAT, "stacked": STACKED,
          "hvae": arm((0.82, 0.01), (0.78, 0.02), (0.84, 0.02), (0.95, 0.01), (0.05, 0.01),
                      probe_top=0.33)}
    lines = "\n".join(coverage.verdict_lines(ok, "hvae"))
    assert "## Verdict against `hvae`" in lines
    stacked_row = next(line for line in lines.splitlines() if line.startswith("| stacked |"))
    assert stacked_row.split(" | ")[1].startswith("better")   # precision 0.95 against 0.82
    assert stacked_row.split(" | ")[3].startswith("worse")    # recall 0.08 against 0.84
    assert "| hvae |" not in lines
    assert coverage.verdict_lines(ok, "lvae") == []           # no such arm: no table


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_workers_die_with_a_killed_benchmark():
    """`kill -9` of a benchmark must not leave its workers training (into folders reused later)."""
    root = Path(__file__).resolve().parents[2]
    script = ("import sys, time; sys.path.insert(0, sys.argv[1]); "
              "from benchmarks._runs import run_parallel; "
              "run_parallel(time.sleep, [(300,), (300,)], 2, 1)")
    parent = subprocess.Popen([sys.executable, "-c", script, str(root)])
    workers: list[int] = []
    try:
        children = f"/proc/{parent.pid}/task/{parent.pid}/children"
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = [int(p) for p in Path(children).read_text().split()]
            workers = [p for p in pids
                       if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        time.sleep(3)  # let both run their initializer (torch's import) and start the job
        assert all(alive(p) for p in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(p) for p in workers)
    finally:
        parent.kill()
        for p in workers:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_step_budget_keeps_the_presets_other_train_fields():
    """The benchmarks' budget override replaced the whole ``train`` mapping and so dropped the
    z8 preset's 512 prior samples; it sets the budget's fields only."""
    from benchmarks._runs import train_overrides
    from hierot.spec.loading import load_spec

    spec = load_spec("mnist-stackedwae-z8.v1", train_overrides(steps=40, log_every=10))
    assert spec.train.prior_samples == 512
    assert (spec.train.steps, spec.train.epochs, spec.train.checkpoint_every) == (40, None, 40)
    assert (spec.train.log_every, spec.train.progress) == (10, False)
