"""Training and evaluating run directories: the machinery of the training benchmarks.

Each trains run directories under ``benchmarks/results/NAME/runs/<mode>/`` (kept out of git),
evaluates each with :func:`hierot.evaluation.evaluate` (the metrics of ``hierot eval``), times the
training step (from ``metrics.csv``) and the divergence alone, and aggregates over seeds as
mean ± sample standard deviation.
"""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks._common import log, set_threads, sync
from hierot.evaluation.compare import mean_std


def run_parallel(function: Callable[..., dict], jobs: list[tuple], workers: int,
                 threads: int | None) -> list[dict]:
    """``[function(*job) for job in jobs]``, in ``workers`` fresh processes when more than one.

    Each worker process runs ``threads`` torch threads; keep ``workers * threads`` at or below
    the number of cores, or the timings measure contention (OpenMP threads spin while waiting).
    """
    if workers <= 1 or len(jobs) <= 1:
        return [function(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                             initargs=(threads, os.getpid())) as pool:
        return list(pool.map(function, *zip(*jobs)))


def start_worker(threads: int | None, parent: int) -> None:
    """A worker's setup: its torch threads, and (on Linux) death with its parent.

    Without the second, ``kill PID`` of a benchmark leaves its workers training on into run
    directories that the next run of the benchmark empties and refills: two trainers, one folder.
    """
    set_threads(threads)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def fresh_dir(path: Path) -> Path:
    """Empty ``path`` (a benchmark's own ``runs/<mode>`` folder) and return it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def train_overrides(steps: int, log_every: int, batch_size: int = 128) -> list[str]:
    """A step budget replacing the preset's (one checkpoint, at the end); the preset's other
    ``train`` fields (``prior_samples``, ``eval_every``, ...) are kept."""
    log_every = min(log_every, steps)
    return [f"train.batch_size={batch_size}", f"train.steps={steps}", "train.epochs=null",
            f"train.log_every={log_every}", f"train.checkpoint_every={steps}",
            "train.progress=false"]


VAE_OBJECTIVES = ("hvae", "lvae")
"""Objectives with a KL term, whose linear warm-up (``objective.warmup_steps``) benchmarks set."""


def kl_warmup(preset: str, warmup_steps: int) -> list[str]:
    """``objective.warmup_steps`` for a preset of the VAE family (:data:`VAE_OBJECTIVES`), none
    for the others: the one rule behind every benchmark that trains both families."""
    from hierot.spec import load_spec

    if load_spec(preset).objective.name not in VAE_OBJECTIVES:
        return []
    return [f"objective.warmup_steps={warmup_steps}"]


def width_overrides(preset: str, shrink: int) -> list[str]:
    """Every hidden width of ``preset`` divided by ``shrink`` (none when 1)."""
    from hierot.spec import load_spec

    if shrink == 1:
        return []
    spec = load_spec(preset)
    out = []
    for i, layer in enumerate(spec.layers):
        for part in ("encoder", "decoder"):
            hidden = [max(1, h // shrink) for h in getattr(layer, part).hidden]
            out.append(f"layers.{i}.{part}.hidden={json.dumps(hidden)}")
    return out


def seed_jobs(arms: dict[str, tuple[str, list[str]]], budget: dict, run_root: Path, *,
              device: str | None, out: Path) -> tuple[list[tuple], list[str]]:
    """The :func:`run_recorded` jobs of every arm and seed, and the arm of each job.

    ``arms`` maps an arm to its preset and the overrides it adds; every run gets ``budget``'s
    data, seed, widths (divided by ``shrink``) and step budget, and goes to
    ``run_root/<arm>/seed-<seed>``.
    """
    jobs, keys = [], []
    for arm, (preset, extra) in arms.items():
        for seed in budget["seeds"]:
            overrides = [f"data={json.dumps(budget['data'])}", f"seed={seed}",
                         *width_overrides(preset, budget["shrink"]),
                         *train_overrides(budget["steps"], budget["log_every"]), *extra]
            if device:
                overrides.append(f"device={device}")
            run = run_root / arm / f"seed-{seed}"
            jobs.append((preset, overrides, run, device, False, out, seed))
            keys.append(arm)
    return jobs, keys


def seconds_per_step(run_dir: Path) -> dict:
    """Median seconds per training step over the logging intervals of ``metrics.csv``.

    The first interval (warm-up, allocator growth) is left out when there are others; the last
    one holds the checkpoint write and is left out too when there are at least three.
    """
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [(int(r["step"]), float(r["wall_time"])) for r in csv.DictReader(f)]
    points = [(0, 0.0), *rows]
    rates = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in itertools.pairwise(points) if s1 > s0]
    kept = rates[1:] if len(rates) > 1 else rates
    kept = kept[:-1] if len(kept) > 2 else kept
    return {"median_s": statistics.median(kept), "intervals": len(kept),
            "total_wall_s": rows[-1][1], "steps": rows[-1][0]}


def time_divergence(run_dir: Path, *, device: str | None, warmup: int = 3, repeats: int = 15,
                    seed: int = 0) -> dict:
    """Median time of the run's own divergence, forward + backward, on one training batch.

    The trained model encodes ``batch_size`` training points (reparameterised samples, as in
    training) to the matched (top) latent; the divergence to as many N(0, I) draws is evaluated and
    differentiated with respect to the codes, ``repeats`` times after ``warmup``.
    """
    import torch

    from hierot.evaluation import encode, load_run

    run = load_run(run_dir, device=device)
    batch = run.spec.train.batch_size
    generator = torch.Generator().manual_seed(seed)
    x = run.data.train_x[torch.randperm(len(run.data.train_x), generator=generator)[:batch]]
    torch.manual_seed(seed)
    codes = encode(run.model, x, sample=True, device=run.device)[-1].to(run.device)
    prior = torch.randn(codes.shape, generator=generator).to(run.device)
    divergence = run.built.objective.divergence

    def once() -> float:
        z = codes.clone().requires_grad_(True)
        sync(run.device)
        start = time.perf_counter()
        divergence(z, prior).backward()
        sync(run.device)
        return time.perf_counter() - start

    for _ in range(warmup):
        once()
    times = [once() for _ in range(repeats)]
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats,
            "warmup": warmup, "batch": list(codes.shape)}


def fmt(stat: dict, digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± std`` for a Markdown table (``-`` when missing)."""
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean'] * scale:.{digits}g}"
    return text + (f" ± {stat['std'] * scale:.2g}" if stat["std"] is not None else "")


SAMPLERS = ("prior", "gmm")
"""Samplers of the top latent every run is evaluated with (each along the ancestral and the
decoder-mean path): the model's prior, and a 10-component Gaussian mixture fitted post hoc."""
SAMPLE_METRICS = ("fcd", "precision", "recall", "density", "coverage", "class_tv", "rare")
"""The numbers kept of each sampler / path of ``eval.json``'s ``sample_quality``."""


def summarise_samples(quality: dict) -> dict:
    """``{"sampler / path": {metric: value, "hist": [...]}}`` of ``eval.json``'s
    ``sample_quality``, with the training data against the test data under ``"reference"``."""
    def one(block: dict) -> dict:
        classes = block["class_coverage"]
        return {"fcd": block["fcd"], "precision": block["precision"], "recall": block["recall"],
                "density": block["density"], "coverage": block["coverage"],
                "class_tv": classes["total_variation"], "rare": classes["rare"],
                "rare_classes": classes["rare_classes"], "hist": classes["samples"]}

    if "samplers" not in quality:
        return {}
    # the held-out split against the reference (hierot-eval/2), or training vs test data (before)
    reference = quality.get("floor") or quality["reference_train_vs_test"]
    out = {"reference": {**one(reference), "test_hist": reference["class_coverage"]["test"]}}
    for sampler, paths in quality["samplers"].items():
        out.update({f"{sampler} / {path}": one(block) for path, block in paths.items()})
    return out


def aggregate_samples(summaries: list[dict]) -> dict:
    """Mean ± sd over seeds of every sample metric of every sampler / path; mean histograms."""
    summaries = [s for s in summaries if s]
    if not summaries:
        return {}
    out = {}
    for key in summaries[0]:
        out[key] = {m: mean_std([s[key][m] for s in summaries]) for m in SAMPLE_METRICS}
        hists = [s[key]["hist"] for s in summaries]
        out[key]["hist"] = [sum(h[c] for h in hists) / len(hists) for c in range(len(hists[0]))]
    out["reference"]["test_hist"] = summaries[0]["reference"]["test_hist"]
    return out


def summarise_eval(result: dict) -> dict:
    """The numbers of ``eval.json`` that this benchmark reports."""
    top, quality = result["top_divergence"], result["sample_quality"]
    return {
        "rec_mse": result["reconstruction"]["mse"],
        "rec_l2sq": result["reconstruction"]["l2sq"],
        "probe": result["probe"].get("accuracy", {}),
        "probe_chance": result["probe"].get("chance"),
        "top_mmd": top.get("mmd"), "top_sinkhorn": top.get("sinkhorn"), "top_floor": top["floor"],
        "fcd": quality.get("fcd"),
        "fcd_floor": quality.get("floor_fcd", quality.get("floor_train_vs_test")),
        "active_units": result["active_units"]["count"],
        "samples": summarise_samples(quality),
    }


def run_one(source: str, overrides: list[str], out: Path, device: str | None,
            with_divergence: bool = True) -> dict:
    """Train, time and evaluate one run directory."""
    import hierot
    from hierot.evaluation import evaluate

    log(f"train {out}")
    result = hierot.fit(source, out=out, overrides=overrides)
    record = {"run_dir": str(out), "train_wall_s": round(result.wall_time, 2),
              "step_time": seconds_per_step(out)}
    if with_divergence:
        record["divergence_time"] = time_divergence(out, device=device)
        record["divergence_share"] = (record["divergence_time"]["median_s"]
                                      / record["step_time"]["median_s"])
    log(f"eval {out}")
    record["eval"] = summarise_eval(evaluate(out, device=device, samplers=SAMPLERS))
    record["spec"] = (out / "spec.yaml").read_text()
    return record


def run_recorded(source: str, overrides: list[str], out: Path, device: str | None,
                 with_divergence: bool, root: Path, seed: int) -> dict:
    """:func:`run_one`, with a failure recorded rather than raised (the other runs go on)."""
    try:
        record = run_one(source, overrides, out, device, with_divergence)
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the rest go on
        log(f"failed {out}: {exc}")
        record = {"run_dir": str(out), "error": f"{type(exc).__name__}: {exc}"}
    record.update(seed=seed, overrides=overrides)
    record["run_dir"] = str(Path(record["run_dir"]).relative_to(root))
    return record


def aggregate(records: list[dict]) -> dict:
    ok = [r for r in records if "eval" in r]
    if not ok:
        return {}
    get = lambda f: mean_std([f(r) for r in ok])
    layers = list(ok[0]["eval"]["rec_mse"])
    return {
        "seeds": len(ok),
        "step_s": get(lambda r: r["step_time"]["median_s"]),
        "divergence_s": get(lambda r: r.get("divergence_time", {}).get("median_s")),
        "divergence_share": get(lambda r: r.get("divergence_share")),
        "rec_mse": {k: get(lambda r, k=k: r["eval"]["rec_mse"][k]) for k in layers},
        "probe": {k: get(lambda r, k=k: r["eval"]["probe"].get(k)) for k in layers},
        "top_mmd": get(lambda r: r["eval"]["top_mmd"]),
        "top_sinkhorn": get(lambda r: r["eval"]["top_sinkhorn"]),
        "fcd": get(lambda r: r["eval"]["fcd"]),
        "fcd_floor": get(lambda r: r["eval"]["fcd_floor"]),
        "probe_chance": ok[0]["eval"]["probe_chance"],
        "samples": aggregate_samples([r["eval"].get("samples", {}) for r in ok]),
    }
