"""What a tracker costs: start-up, each logged row, and the end, for every built-in tracker.

Each tracker (``tensorboard``; ``mlflow`` on a fresh SQLite store; ``wandb`` offline) is built from
its registry entry for the ``quickstart`` spec in a fresh run directory, started, sent ``--rows``
rows of 30 metrics through ``on_log`` (the trainer sends one per ``train.log_every`` steps), then
ended (without figures) and closed; each phase is timed on the wall clock. A tracker's cost per
training step is its cost per row divided by ``log_every``.

    python -m benchmarks trackers

Writes ``benchmarks/results/trackers/full.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common

NAME = "trackers"


def time_tracker(name: str, root: Path, rows: int) -> dict:
    import hierot
    from hierot.registry import callbacks
    from hierot.run import Run
    from hierot.training import TrainResult

    spec = hierot.load_spec("quickstart")
    extra = {"mlflow": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"},
             "wandb": {"mode": "offline"}}.get(name, {})
    run_dir = Run(root / name)
    run_dir.path.mkdir(parents=True)
    options = callbacks.tagged_options(name)(name=name, figures=False, **extra)
    metrics = {f"term_{i}": float(i) for i in range(30)}
    t0 = time.perf_counter()
    tracker = callbacks.build(options, run_dir=run_dir, spec=spec)
    tracker.on_train_start(spec, 0)
    start = time.perf_counter() - t0
    per_row = []
    for step in range(1, rows + 1):
        t = time.perf_counter()
        tracker.on_log(step, metrics)
        per_row.append(time.perf_counter() - t)
    t = time.perf_counter()
    tracker.on_train_end(TrainResult(rows, 0.0))
    tracker.close()
    end = time.perf_counter() - t
    return {"tracker": name, "options": options.model_dump(mode="json"), "start_s": start,
            "row_median_s": statistics.median(per_row), "row_max_s": max(per_row),
            "rows": rows, "end_s": end}


def markdown(report: dict) -> str:
    lines = [f"# Tracker costs ({report['mode']})", "",
             f"{report['created']}; `{report['command']}`; rows of 30 metrics.",
             common.machine_line(report), "",
             "| tracker | start s | per logged row ms (median) | max ms | end s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in report["results"]:
        lines.append(f"| {r['tracker']} | {r['start_s']:.2f} | {1e3 * r['row_median_s']:.2f} "
                     f"| {1e3 * r['row_max_s']:.1f} | {r['end_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    common.set_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    report = common.header(NAME, "full", sys.argv[1:], rows=args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        report["results"] = [time_tracker(n, Path(tmp), args.rows)
                             for n in ("tensorboard", "mlflow", "wandb")]
    for path in common.write(report, common.RESULTS / NAME, markdown):
        common.log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
