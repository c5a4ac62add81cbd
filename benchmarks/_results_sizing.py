"""Sizing the results table: seconds per training step of each of its model families.

``python -m benchmarks results_table --time-steps N`` trains each distinct configuration of the
table's arms (five families with the presets' MMD, the two StackedWAE families with Sinkhorn) at
the paper's widths, batch 128, for ``N`` steps on ``mnist-5k`` (the step's cost does not depend on
the data set: both are 28 x 28 images held in memory), ``--jobs`` at a time as the table trains
them, and takes the median seconds per step over the logging intervals
(:func:`benchmarks._runs.seconds_per_step`) and the CPU time per step. From them: the run time of
the whole table per step of budget, and the steps (and epochs of each data set) that a given
number of hours affords with ``--jobs`` runs at a time. Writes ``OUT/sizing.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import _common as common
from benchmarks import _runs as runs

HOURS = (3, 6)
"""Wall-clock hours of background CPU the report converts into a step budget."""
TRAIN_SIZES = {"mnist-5k": 4500, "fashion-mnist": 60000}
"""Training points of each data set (an epoch is ``size / 128`` steps)."""


def configurations(table: dict[str, tuple[str, list[str]]]) -> dict[str, tuple[str, list[str]]]:
    """One arm of ``mnist-5k`` per distinct step cost, of the table's arms ``{arm: (preset,
    overrides)}``: ``{key: (preset, overrides)}``."""
    return {arm.split("/", 1)[1]: spec for arm, spec in table.items()
            if arm.startswith("mnist-5k/")}


def family(arm: str) -> str:
    """The configuration key of a table arm (its name without the data set)."""
    return arm.split("/", 1)[1]


def afford(step_s: dict[str, float], arms: list[str], seeds: int, jobs: int) -> dict:
    """What step times ``{configuration: s/step}`` afford: the run time of the whole table per
    step of budget, and the steps and epochs per data set that each of :data:`HOURS` buys with
    ``jobs`` runs at a time."""
    per_step = seeds * sum(step_s[family(arm)] for arm in arms)
    out = {"table_s_per_step": per_step, "hours": {}}
    for hours in HOURS:
        steps = int(hours * 3600 * jobs / per_step)
        out["hours"][hours] = {"steps": steps, "epochs": {
            data: round(steps * 128 / size, 2) for data, size in TRAIN_SIZES.items()}}
    return out


def afford_lines(a: dict, what: str, report: dict) -> list[str]:
    lines = [(f"By {what}, the whole table ({report['arms']} arms x {report['seeds']} seeds) "
              f"takes {a['table_s_per_step']:.1f} s per step of budget; with {report['jobs']} runs "
              "at a time:"), ""]
    lines += common.markdown_table(["hours", "steps per run", "epochs of mnist-5k",
                                    "epochs of fashion-mnist"], [
        (h, v["steps"], v["epochs"]["mnist-5k"], v["epochs"]["fashion-mnist"])
        for h, v in a["hours"].items()])
    return lines + [""]


def markdown(report: dict) -> str:
    lines = common.report_intro(report, "Sizing the results table", (
        f"Each configuration trained for {report['steps']} steps of batch 128 at the paper's "
        f"widths on `mnist-5k`, {report['jobs']} at a time (niceness "
        f"{report['nice']}); median seconds per step over the logging intervals."))
    lines += common.markdown_table(["configuration", "preset", "wall s/step", "CPU s/step"], [
        (key, f"`{v['preset']}`", f"{v['median_s']:.3f}", f"{v['cpu_s_per_step']:.3f}")
        for key, v in report["step_s"].items()])
    lines += ["", ("Wall s/step: the median over the logging intervals (warm-up and checkpoint "
                   "intervals left out) under the load stated above; CPU s/step: the process's "
                   "CPU time over the whole of `hierot.fit` (building and data loading included) "
                   "divided by the steps, which the load barely changes. The budget below uses "
                   "the wall times (what the machine gave a niced run at the time) and the CPU "
                   "times (what a machine with a core free for each run gives).")]
    lines += [""]
    lines += afford_lines(report["afford"]["wall"], "the wall times (the load above)", report)
    lines += afford_lines(report["afford"]["cpu"], "the CPU times (cores to itself)", report)
    lines += [("Evaluation time is not included. Timed under the load stated above: on a "
                   "quieter machine the steps are faster and the budget larger."), ""]
    return "\n".join(lines) + "\n"


def time_one(key: str, preset: str, overrides: list[str], run_dir: Path, steps: int) -> dict:
    """Train one configuration for ``steps`` steps: wall s/step of its intervals, CPU s/step."""
    import hierot

    common.log(f"time {key}")
    cpu = time.process_time()
    hierot.fit(preset, out=run_dir, overrides=overrides)
    cpu = (time.process_time() - cpu) / steps
    timing = {"preset": preset, **runs.seconds_per_step(run_dir), "cpu_s_per_step": cpu}
    common.log(f"{key}: {timing['median_s']:.3f} s/step, {cpu:.3f} CPU s/step")
    return timing


def main(args: argparse.Namespace, argv: list[str], threads: int, *, arms: dict,
         overrides: Callable[..., list[str]], full: dict) -> int:
    """Time ``args.time_steps`` steps of each configuration of the table's ``arms`` (its
    :func:`~benchmarks.results_table.arms`), run with the table's ``overrides`` function under its
    ``full`` budget (passed in, so that this module imports nothing of the table's)."""
    budget = {**full, "steps": args.time_steps, "log_every": max(1, args.time_steps // 10),
              "checkpoint_every": args.time_steps}
    report = common.header("results_table", "sizing", argv, device=args.device,
                           torch_threads=threads, jobs=args.jobs, nice=args.nice,
                           steps=args.time_steps, step_s={})
    with tempfile.TemporaryDirectory(prefix="results-sizing-") as tmp:
        jobs = [(key, preset, overrides(preset, extra, budget, 0), Path(tmp) / key, args.time_steps)
                for key, (preset, extra) in configurations(arms).items()]
        for key, timing in zip(configurations(arms), runs.run_parallel(time_one, jobs, args.jobs,
                                                                    threads)):
            report["step_s"][key] = timing
    table = list(arms)
    seeds = len(full["seeds"])
    report.update(arms=len(table), seeds=seeds, afford={
        "wall": afford({k: v["median_s"] for k, v in report["step_s"].items()}, table, seeds,
                       args.jobs),
        "cpu": afford({k: v["cpu_s_per_step"] for k, v in report["step_s"].items()}, table,
                      seeds, args.jobs)})
    for path in common.write(report, args.out, markdown, stem="sizing"):
        print(f"wrote {path}")
    return 0
