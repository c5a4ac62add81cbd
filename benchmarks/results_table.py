"""The results table: every shipped MNIST-family model on two data sets, one budget, three seeds.

The arms (issue 26): the five model families of the shipped presets, ``stackedwae`` (the
paper's), ``stackedwae-z8``, ``wae`` (flat), ``hvae`` and ``lvae``, each at the paper's widths, on
``mnist-5k`` (the ``mnist-*.v1`` presets with ``data: {name: mnist-5k}``) and on the full
``fashion-mnist`` (the ``fashion-*.v1`` presets); the two StackedWAE families with each top
divergence, ``mmd`` (the presets') and ``sinkhorn`` (geomloss, blur 0.5). Every arm gets the same
step budget, batch 128 and seeds; the VAEs' linear KL warm-up is a third of the budget. Arm
names read ``DATA/MODEL[-DIVERGENCE]``, e.g. ``fashion-mnist/stackedwae-z8-sinkhorn``.

The benchmark is resumable, so that the table can be trained over several sessions or machines:

* each finished run's record is written atomically to ``OUT/records/MODE/ARM/seed-S.json``; a
  run whose record is there (same preset and overrides) is not trained again;
* a run killed while training is continued from its newest checkpoint (``train.checkpoint_every``)
  with :func:`hierot.fit` ``resume=``; a raised ``--steps`` extends the finished runs the same way;
* ``--only GLOB ...`` picks arms, ``--shard I/N`` takes every N-th run of the plan from the I-th
  (1-based; a fixed split, so shards started at different times never share a run),
  ``--max-runs K`` stops after K runs;
* the table (``OUT/MODE.json`` and ``.md``) is rebuilt from every record on disk at the end of each
  invocation (``--table`` rebuilds it without training), labelled partial until it is complete.

Evaluation is one function, :func:`measure` (``hierot eval``'s metrics through
:func:`hierot.evaluate`); the page (its numbers and ``hierot compare``'s verdicts) is
:mod:`benchmarks._results_page`, its Markdown :mod:`benchmarks._results_markdown`. In the full
mode with the default ``OUT`` the page is also copied to ``docs/results-table.md`` (its grids to
``docs/img/results/``), which ``docs/results.md`` includes (``--docs DIR`` elsewhere).

    python -m benchmarks results_table --smoke          # 2 tiny arms, 1 seed, a few steps
    python -m benchmarks results_table --time-steps 40  # s/step of each family: the budget's size
    python -m benchmarks results_table --jobs 2         # the whole table (hours: see the README)
    python -m benchmarks results_table --only 'fashion-mnist/*' --shard 1/2

Runs go to ``OUT/runs/MODE/`` (ignored by git); ``OUT`` is ``benchmarks/results/results_table``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs

NAME = "results_table"
MODELS = {"stackedwae": "stackedwae.v1", "stackedwae-z8": "stackedwae-z8.v1", "wae": "wae.v1",
          "hvae": "hvae.v1", "lvae": "lvae.v1"}
"""Model family -> the version of its presets (``mnist-<version>``, ``fashion-<version>``)."""
DATASETS = {"mnist-5k": ("mnist", ["data={name: mnist-5k}"]), "fashion-mnist": ("fashion", [])}
"""Data set -> the prefix of its presets and the overrides that select it."""
DIVERGENCES = {"mmd": [], "sinkhorn": ["divergence={name: sinkhorn, backend: geomloss, blur: 0.5}"]}
"""Top divergences of the StackedWAE families (``mmd``: the presets' own)."""
STACKED = ("stackedwae", "stackedwae-z8")
DOCS = Path(__file__).resolve().parent.parent / "docs"
"""Where the full mode's page is copied (``results-table.md``, included by ``results.md``)."""
FULL_STEPS = 1000
"""The full mode's budget per run: 28 epochs of ``mnist-5k``, 2.1 of Fashion-MNIST; about 2 hours of
the whole table (training and evaluation) on two free cores; see ``benchmarks/README.md``,
"Sizing the results table". ``--steps N`` extends finished runs from their last checkpoint."""
MODES = {
    "full": {"steps": FULL_STEPS, "seeds": [0, 1, 2], "shrink": 1, "log_every": 100,
             "checkpoint_every": 500, "eval_samples": 10_000, "samplers": list(runs.SAMPLERS),
             "arms": ["*"]},
    "smoke": {"steps": 4, "seeds": [0], "shrink": 64, "log_every": 2, "checkpoint_every": 2,
              "eval_samples": 100, "samplers": ["prior"],
              "arms": ["mnist-5k/stackedwae-mmd", "mnist-5k/wae"]},
}


def arms() -> dict[str, tuple[str, list[str]]]:
    """Every arm of the table: ``{ARM: (preset, overrides)}``, data sets first, then models."""
    out = {}
    for data, (prefix, data_overrides) in DATASETS.items():
        for model, version in MODELS.items():
            preset = f"{prefix}-{version}"
            if model in STACKED:
                for divergence, extra in DIVERGENCES.items():
                    out[f"{data}/{model}-{divergence}"] = (preset, [*data_overrides, *extra])
            else:
                out[f"{data}/{model}"] = (preset, list(data_overrides))
    return out


def select(patterns: list[str]) -> list[str]:
    """The arms matching any of the glob ``patterns``; a pattern matching none is an error."""
    table = arms()
    for pattern in patterns:
        if not fnmatch.filter(table, pattern):
            raise ValueError(f"--only {pattern!r} matches no arm; arms: {', '.join(table)}")
    return [a for a in table if any(fnmatch.fnmatch(a, p) for p in patterns)]


def overrides(preset: str, extra: list[str], budget: dict, seed: int) -> list[str]:
    """The overrides of one run: seed, widths, the step budget (dotted, so that a preset's other
    ``train`` fields such as ``prior_samples`` stay), the VAEs' warm-up, the arm's own."""
    steps = budget["steps"]
    out = [f"seed={seed}", *runs.width_overrides(preset, budget["shrink"]),
           "train.epochs=null", f"train.steps={steps}", "train.batch_size=128",
           f"train.log_every={min(budget['log_every'], steps)}",
           f"train.checkpoint_every={min(budget['checkpoint_every'], steps)}",
           "train.progress=false", *runs.kl_warmup(preset, steps // 3)]
    return out + extra


def plan(mode: str, budget: dict, out: Path, names: list[str]) -> list[dict]:
    """One job per arm in ``names`` and seed: where its run and its record go (``where``:
    ``MODE/ARM/seed-S``, under ``OUT/runs`` and ``OUT/records``)."""
    table, jobs = arms(), []
    for arm in names:
        preset, extra = table[arm]
        for seed in budget["seeds"]:
            where = Path(mode) / arm / f"seed-{seed}"
            jobs.append({"arm": arm, "seed": seed, "preset": preset, "where": str(where),
                         "overrides": overrides(preset, extra, budget, seed),
                         "run_dir": str(out / "runs" / where),
                         "record": str(out / "records" / where) + ".json"})
    return jobs


def done(job: dict) -> bool:
    """Whether ``job``'s record is on disk for the same preset and overrides."""
    path = Path(job["record"])
    if not path.is_file():
        return False
    record = json.loads(path.read_text())
    return record.get("preset") == job["preset"] and record.get("overrides") == job["overrides"]


def shard(jobs: list[dict], text: str | None) -> list[dict]:
    """The ``I/N`` shard of ``jobs``: every N-th job from the I-th (1-based)."""
    if not text:
        return jobs
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        index = count = 0
    if not 1 <= index <= count:
        raise ValueError(f"--shard must read I/N with 1 <= I <= N, got {text!r}")
    return jobs[index - 1::count]


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def train(job: dict) -> None:
    """Train ``job``'s run: a new one, or continue (or extend) the one a killed run left."""
    import hierot

    run_dir = Path(job["run_dir"])
    if (run_dir / "spec.yaml").is_file():
        common.log(f"resume {run_dir}")
        hierot.fit(resume=run_dir, overrides=job["overrides"])
        return
    if run_dir.exists():  # killed before its spec was written: nothing to keep
        shutil.rmtree(run_dir)
    common.log(f"train {run_dir}")
    hierot.fit(job["preset"], out=run_dir, overrides=job["overrides"])


def measure(run_dir: Path, budget: dict, device: str | None) -> dict:
    """Every number the table reports of one trained run: ``hierot eval`` under the evaluation
    protocol (``hierot-eval/2``: the shipped classifier's features, ``budget["eval_samples"]``
    samples per sampler and path, bootstrap intervals, KID, per-layer fidelity and coverage).

    Returns ``{"eval": the benchmarks' summary, "eval_json": the whole of RUN/eval.json}``: the
    record keeps ``eval.json`` whole, so that the page (and ``hierot compare``'s verdicts) can be
    rebuilt from the committed records without the run directories.
    """
    import hierot

    result = hierot.evaluate(run_dir, device=device, samples=budget["eval_samples"],
                             samplers=budget["samplers"])
    summary = {**runs.summarise_eval(result), "kl": result["kl"]["nats"],
               "kl_estimate": result["kl"]["estimate"],
               "active_dims": result["active_units"]["dims"],
               "active_units": result["active_units"]["count"], "likelihood": result["likelihood"]}
    kept = {k: v for k, v in result.items() if k != "run"}  # records are committed: no local paths
    return {"eval": summary, "eval_json": kept}


def run_job(job: dict, budget: dict, device: str | None) -> dict:
    """Train and measure one run and write its record; a failure is written beside it (as
    ``seed-S.failed.json``, which does not count as done) and returned, not raised."""
    record_file = Path(job["record"])
    failed = record_file.with_suffix(".failed.json")
    started = time.time()
    try:
        train(job)
        kept = {k: v for k, v in job.items() if k not in ("run_dir", "record")}  # no local paths
        record = {**kept, "step_time": runs.seconds_per_step(Path(job["run_dir"])),
                  **measure(Path(job["run_dir"]), budget, device),
                  "spec": (Path(job["run_dir"]) / "spec.yaml").read_text()}
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the rest go on
        common.log(f"failed {job['run_dir']}: {exc}")
        record = {**job, "error": f"{type(exc).__name__}: {exc}"}
        write_atomic(failed, json.dumps(record, indent=2) + "\n")
        return record
    record.update(session_wall_s=round(time.time() - started, 1), commit=commit())
    write_atomic(record_file, json.dumps(record, indent=2) + "\n")
    failed.unlink(missing_ok=True)
    return record


def records(out: Path, mode: str) -> list[dict]:
    """Every record written for ``mode`` (all arms, every session), in the table's order."""
    found = [json.loads(p.read_text()) for p in (out / "records" / mode).rglob("seed-*.json")
             if not p.name.endswith(".failed.json")]
    order = list(arms())
    return sorted(found, key=lambda r: (order.index(r["arm"]) if r["arm"] in order else 99,
                                        r["seed"]))


def commit() -> str:
    """The repository's commit (``+dirty`` with uncommitted changes), or ``unknown``."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = common.parser(NAME, __doc__, quick="the same as --smoke", threads=1,
                           threads_help="torch CPU threads per run (default 1)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny budget, 2 arms, 1 seed: " + json.dumps(MODES["smoke"]))
    parser.add_argument("--only", nargs="+", metavar="GLOB", help="arms to run (default: all)")
    parser.add_argument("--shard", metavar="I/N", help="the I-th of N fixed shares of the runs")
    parser.add_argument("--max-runs", type=int, help="stop after training this many runs")
    parser.add_argument("--steps", type=int, help="steps per run (default: the mode's)")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--nice", type=int, default=10, help="niceness increment (default 10)")
    parser.add_argument("--table", action="store_true",
                        help="only rebuild the table from the records")
    parser.add_argument("--docs", type=Path, metavar="DIR",
                        help="also write the page to DIR/results-table.md, its grids to "
                        "DIR/img/results/ (default: the repository's docs/ in the full mode "
                        "with the default --out, else nowhere)")
    parser.add_argument("--time-steps", type=int, metavar="N",
                        help="instead: time N training steps of each family at the paper's widths")
    args = parser.parse_args(argv)
    try:
        args.arms = select(args.only) if args.only else None
        shard([], args.shard)
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.nice:
        os.nice(args.nice)
    threads = common.set_threads(args.threads)
    if args.time_steps:
        from benchmarks import _results_sizing

        return _results_sizing.main(args, argv, threads, arms=arms(), overrides=overrides,
                                    full=MODES["full"])
    from benchmarks import _results_markdown as page_markdown
    from benchmarks import _results_page as page

    mode = "smoke" if args.smoke or args.quick else "full"
    budget = dict(MODES[mode])
    budget.update({k: v for k, v in (("steps", args.steps), ("seeds", args.seeds)) if v})
    names = args.arms or select(budget["arms"])
    jobs = plan(mode, budget, args.out, names)
    todo = [job for job in jobs if not done(job)]
    pending = [job for job in shard(jobs, args.shard) if not done(job)][:args.max_runs]
    report = common.header(NAME, mode, argv, device=args.device, torch_threads=threads,
                           jobs=args.jobs, budget=budget, arms=arms(), nice=args.nice,
                           commit=commit(),
                           trained_now=[] if args.table else [j["record"] for j in pending])
    if not args.table:
        common.log(f"{len(jobs) - len(todo)} of {len(jobs)} runs done; training {len(pending)}")
        runs.run_parallel(run_job, [(job, budget, args.device) for job in pending], args.jobs,
                          threads)
    report.update(page.summarise(records(args.out, mode), plan(mode, budget, args.out,
                                                                select(budget["arms"]))))
    page.draw_grids(report, args.out / "runs" / mode, args.out)
    for path in common.write(report, args.out, page_markdown.markdown):
        print(f"wrote {path}")
    docs = args.docs or (DOCS if mode == "full" and args.out == common.RESULTS / NAME else None)
    if docs:
        text = (args.out / f"{mode}.md").read_text()
        print(f"wrote {page.publish(report, text, args.out, docs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
