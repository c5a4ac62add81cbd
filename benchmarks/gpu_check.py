"""Every accelerator path of hierot, run once on the CUDA device present, in one command.

Each check trains (or evaluates) a tiny hierarchy on the ``digits`` data set (8x8 images,
bundled with scikit-learn: nothing to download) on the device, and reads back what it wrote:

* ``precision-fp32``, ``precision-bf16``, ``precision-fp16``: a few steps in each precision, with
  ``train.ema`` and ``train.skip_update`` on (fp16: the loss scaler's state is checkpointed and
  a skipped update keeps its scale), every value written finite;
* ``compile``: ``train.compile: true`` (TorchInductor), and its loss near the eager one's;
* ``fused-adam``: ``optimizer.implementation: fused``, against ``foreach`` on the same steps;
* ``divergence-<name>``: every built-in divergence in a training step;
* ``eval-and-sample``: ``hierot eval`` (the held-out metrics) and ``hierot sample`` of a run;
* ``resume``: 2 steps, a resume to 4, against 4 straight (and two straight runs against each
  other: a device whose kernels are not deterministic cannot be asked for bit-exact resumes);
* ``ddp-torchrun``: ``hierot train`` under ``torchrun --nproc_per_node 1`` with the ``nccl``
  backend (``gloo`` on the CPU);
* ``train-step-ratios``: ``python -m benchmarks train_step`` (fp32, bf16, fp16, compile) on the
  device, its rows copied into this report.

A failing check is recorded with its error and the others still run; the exit status is 1 when
any failed. The report is ``benchmarks/results/gpu/<device name>.json`` and ``.md``.

On a machine without CUDA there is nothing to check: the command says so and exits 0.
``--device cpu`` is the dry run: the same checks on the CPU (fp16, CUDA-only, is skipped with its
reason; ``gloo`` stands in for ``nccl``), so that the command's own logic is tested where no GPU
is (``tests/benchmarks/test_gpu_check.py``)::

    python -m benchmarks gpu_check                         # on a CUDA machine
    python -m benchmarks gpu_check --device cpu --skip compile --skip train-step-ratios
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import _common as common

NAME = "gpu"
TINY = {
    "data": {"name": "digits"},
    "layers": [
        {"latent_shape": [8], "encoder": {"name": "mlp", "hidden": [32]},
         "decoder": {"name": "mlp", "hidden": [32], "output": "sigmoid"},
         "decoder_head": "deterministic"},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [16]},
         "decoder": {"name": "mlp", "hidden": [16]}},
    ],
    "train": {"batch_size": 64, "steps": 4, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}
LONG_RUN = ["train.ema={decay: 0.9, start_step: 1}",
            "train.skip_update={grad_norm_above: 1.0e+6, max_consecutive: 3}"]
RATIO_VARIANTS = ("fp32", "bf16", "fp16", "compile")


class Skipped(Exception):
    """A check that does not apply on this device (the reason is the message)."""


# -- helpers -------------------------------------------------------------------------------------
def _fit(device: str, out: Path, *overrides: str, resume: Path | None = None):
    import hierot

    if resume is not None:
        return hierot.fit(resume=resume, overrides=list(overrides))
    return hierot.fit(TINY, out=out, overrides=[f"device={device}", *overrides])


def _checkpoint(run: Path, which: int | str | None = None) -> dict:
    from hierot.run import Run

    return Run(run).load_checkpoint(which)


def _finite(state: dict) -> bool:
    tensors = [*state["model"].values(), *state.get("ema", {}).values()]
    tensors += [v for s in state["optimizer"]["state"].values() for v in s.values()
                if torch.is_tensor(v)]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def _max_difference(a: dict, b: dict) -> float:
    return max(float((a[n].double() - b[n].double()).abs().max()) for n in a
               if a[n].is_floating_point())


def _last(run: Path) -> dict[str, float]:
    from hierot.run import Run

    return Run(run).read_metrics()[-1]


# -- the checks ----------------------------------------------------------------------------------
def check_precision(device: str, work: Path, precision: str) -> dict:
    if precision == "fp16" and not device.startswith("cuda"):
        raise Skipped("fp16 (float16 autocast with loss scaling) is CUDA-only")
    if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise Skipped(f"{torch.cuda.get_device_name(device)} has no bfloat16")
    run = work / f"precision-{precision}"
    _fit(device, run, f"train.precision={precision}", *LONG_RUN)
    state = _checkpoint(run)
    if not _finite(state):
        raise AssertionError("a non-finite value was checkpointed")
    if "ema" not in state:
        raise AssertionError("train.ema is set but the checkpoint holds no average")
    detail = {"total": _last(run)["total"], "grad_norm": _last(run).get("grad_norm"),
              "skipped": state["updates"]["skipped"]}
    if precision == "fp16":
        scaler = state["precision"].get("scaler")
        if not scaler or not scaler["scale"] > 0:
            raise AssertionError(f"fp16 checkpoint without a loss scale: {scaler}")
        detail["loss_scale"] = scaler["scale"]
        detail["skip_keeps_scale"] = _fp16_skip_keeps_scale(device)
        if not detail["skip_keeps_scale"]:
            raise AssertionError("a skipped fp16 update changed the loss scale")
    return detail


def _fp16_skip_keeps_scale(device: str) -> bool:
    """Every update over a threshold of 1e-30 is skipped, 3 in a row stopping the run: Adam
    never steps, and the loss scale is halved only by the skips that were fp16 overflows (read
    from the skips' log lines), never by those over the threshold."""
    import logging

    from hierot.errors import NonFiniteLossError

    reasons: list[str] = []

    class Skips(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(record.getMessage())

    handler, logger = Skips(), logging.getLogger("hierot.training")
    logger.addHandler(handler)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                _fit(device, Path(tmp) / "run", "train.precision=fp16", "train.checkpoint_every=1",
                     "train.skip_update={grad_norm_above: 1.0e-30, max_consecutive: 3}")
            except NonFiniteLossError:
                pass  # 3 skips in a row stop the run, after 2 checkpoints
            state = _checkpoint(Path(tmp) / "run")
    finally:
        logger.removeHandler(handler)
    overflows = sum("fp16 overflow" in r for r in reasons[:2])
    expected = torch.amp.GradScaler("cuda").get_scale() * 0.5 ** overflows
    return state["precision"]["scaler"]["scale"] == expected and state["optimizer"]["state"] == {}


def check_compile(device: str, work: Path) -> dict:
    from hierot.training import cpp_compiler

    if device == "cpu" and cpp_compiler() is None:
        raise Skipped("torch.compile on the CPU needs a C++ compiler")
    _fit(device, work / "compiled", "train.compile=true", *LONG_RUN)
    _fit(device, work / "eager", *LONG_RUN)
    compiled, eager = _last(work / "compiled")["total"], _last(work / "eager")["total"]
    if abs(compiled - eager) > 1e-2 * max(1.0, abs(eager)):
        raise AssertionError(f"compiled loss {compiled} far from eager {eager}")
    return {"total_compiled": compiled, "total_eager": eager}


def check_fused_adam(device: str, work: Path) -> dict:
    if not device.startswith("cuda"):
        raise Skipped("fused Adam is used on CUDA (the CPU runs foreach)")
    _fit(device, work / "fused", "optimizer.implementation=fused")
    _fit(device, work / "foreach", "optimizer.implementation=foreach")
    diff = _max_difference(_checkpoint(work / "fused")["model"],
                           _checkpoint(work / "foreach")["model"])
    if diff > 1e-4:
        raise AssertionError(f"fused and foreach Adam differ by {diff:.3g} after 4 steps")
    return {"max_abs_difference_vs_foreach": diff}


def check_divergence(device: str, work: Path, name: str) -> dict:
    run = work / f"divergence-{name}"
    _fit(device, run, f"divergence={{name: {name}}}", "train.steps=2")
    match = {k: v for k, v in _last(run).items() if k.startswith("match_")}
    if not match or not all(math.isfinite(v) for v in match.values()):
        raise AssertionError(f"match terms {match}")
    return match


def check_eval_and_sample(device: str, work: Path) -> dict:
    from hierot.cli import main as cli
    from hierot.evaluation import evaluate, load_run

    run = work / "precision-fp32"
    if not run.exists():
        _fit(device, run, *LONG_RUN)
    result = evaluate(load_run(run, device=device), samples=200, divergence_samples=200,
                      probe_train=500, likelihood_points=50, seed=0)
    out = work / "samples.pt"
    code = cli(["sample", str(run), "-n", "16", "--out", str(out), "--device", device])
    samples = torch.load(out, weights_only=True)
    if code != 0 or samples.shape[0] != 16 or not bool(torch.isfinite(samples).all()):
        raise AssertionError(f"hierot sample: exit {code}, samples {tuple(samples.shape)}")
    quality = result["sample_quality"]
    return {"model_weights": result["model_weights"], "device": result["device"],
            "fcd": quality.get("fcd") if isinstance(quality, dict) else None,
            "objective_total": result["objective"].get("total")}


def check_resume(device: str, work: Path) -> dict:
    _fit(device, work / "straight-a")
    _fit(device, work / "straight-b")
    _fit(device, work / "stopped", "train.steps=2")
    _fit(device, work / "stopped", "train.steps=4", resume=work / "stopped")
    a, b, resumed = (_checkpoint(work / n)["model"]
                     for n in ("straight-a", "straight-b", "stopped"))
    repeatable = _max_difference(a, b) == 0.0
    diff = _max_difference(a, resumed)
    if repeatable and diff != 0.0:
        raise AssertionError(f"repeatable straight runs, but the resumed one differs by {diff:.3g}")
    if diff > 1e-4:
        raise AssertionError(f"the resumed run differs from the straight one by {diff:.3g}")
    return {"repeatable": repeatable, "max_abs_difference_resumed": diff}


def check_ddp(device: str, work: Path) -> dict:
    import hierot
    from hierot.spec import dump_spec

    backend = "nccl" if device.startswith("cuda") else "gloo"
    spec = work / "ddp.yaml"
    spec.write_text(dump_spec(hierot.load_spec(TINY, [f"device={device.split(':')[0]}"])))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
               "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "hierot",
               "train", str(spec), "--out", str(work / "ddp"),
               "--set", f"distributed.backend={backend}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    if done.returncode != 0:
        raise AssertionError(f"torchrun exit {done.returncode}: {done.stderr[-2000:]}")
    state = _checkpoint(work / "ddp")
    if state["step"] != 4 or state["runtime"].get("world_size") != 1:
        raise AssertionError(f"step {state['step']}, runtime {state['runtime']}")
    return {"backend": backend, "step": state["step"], "world_size": 1}


def check_ratios(device: str, work: Path, case: str, repeats: int) -> dict:
    from benchmarks import train_step

    variants = [v for v in RATIO_VARIANTS
                if device.startswith("cuda") or v not in ("fp16", "compile")]
    argv = ["--device", device, "--case", case, "--warmup", "2", "--repeats", str(repeats),
            "--out", str(work / "train_step")]
    for variant in variants:
        argv += ["--variant", variant]
    if train_step.main(argv) != 0:
        raise AssertionError("the train_step benchmark failed")
    (report,) = (json.loads(p.read_text()) for p in (work / "train_step").glob("*.json"))
    rows = [{k: r[k] for k in ("preset", "batch", "variant", "hierot_median_s",
                              "plain_median_s", "ratio", "paired_ratio", "gflops_per_s")}
            for r in report["results"]]
    return {"matmul_gflops": report["matmul_gflops"], "rows": rows}


def checks(device: str, args) -> dict[str, Callable[[Path], dict]]:
    """Every check, by name, in the order run."""
    from hierot.registry import divergences

    table: dict[str, Callable[[Path], dict]] = {
        f"precision-{p}": (lambda work, p=p: check_precision(device, work, p))
        for p in ("fp32", "bf16", "fp16")
    }
    table["compile"] = lambda work: check_compile(device, work)
    table["fused-adam"] = lambda work: check_fused_adam(device, work)
    for entry in divergences.entries():
        if entry.source == "hierot":  # the built-ins (plug-ins are their authors' to check)
            table[f"divergence-{entry.name}"] = (
                lambda work, n=entry.name: check_divergence(device, work, n))
    table["eval-and-sample"] = lambda work: check_eval_and_sample(device, work)
    table["resume"] = lambda work: check_resume(device, work)
    table["ddp-torchrun"] = lambda work: check_ddp(device, work)
    table["train-step-ratios"] = lambda work: check_ratios(device, work, args.ratio_case,
                                                           args.ratio_repeats)
    return table


def run_checks(device: str, args, work: Path) -> list[dict]:
    results = []
    for name, check in checks(device, args).items():
        if any(re.fullmatch(pattern.replace("*", ".*"), name) for pattern in args.skip):
            results.append({"check": name, "status": "skipped", "detail": "--skip"})
            continue
        started = time.perf_counter()
        try:
            detail, status = check(work), "ok"
        except Skipped as exc:
            detail, status = str(exc), "skipped"
        except Exception as exc:  # noqa: BLE001 - a failing check is recorded, the rest run
            lines = traceback.format_exception(exc)
            detail, status = f"{type(exc).__name__}: {exc}\n{''.join(lines[-4:])}", "failed"
        seconds = round(time.perf_counter() - started, 2)
        results.append({"check": name, "status": status, "seconds": seconds, "detail": detail})
        common.log(f"{name:<32} {status:<8} {seconds:7.2f} s")
    return results


def slug(device: str) -> str:
    """The results file's name: the device's name in lower case (``nvidia-h100-80gb-hbm3``)."""
    if not device.startswith("cuda"):
        return "cpu-dry-run"
    name = torch.cuda.get_device_name(torch.device(device))
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def markdown(report: dict) -> str:
    rows = [(r["check"], r["status"], r.get("seconds", ""),
             (r["detail"] if isinstance(r["detail"], str) else json.dumps(r["detail"]))
             .splitlines()[0][:120].replace("|", "/"))
            for r in report["checks"]]
    lines = [
        f"# GPU check: {report['device_name']}",
        "",
        f"{report['created']}; wall time {report['wall_time_s']} s. Regenerate with:",
        "",
        f"    {report['command']}",
        "",
        common.machine_line(report),
        "",
        *common.markdown_table(["check", "status", "seconds", "detail"], rows,
                               numeric=[False, False, True, False]),
    ]
    ratios = next((r["detail"] for r in report["checks"]
                   if r["check"] == "train-step-ratios" and r["status"] == "ok"), None)
    if ratios:
        lines += ["", "## train_step on this device", "",
                  *common.markdown_table(
                      ["preset", "batch", "variant", "hierot ms", "plain ms", "ratio", "paired"],
                      [(r["preset"], r["batch"], r["variant"], f"{1e3 * r['hierot_median_s']:.2f}",
                        f"{1e3 * r['plain_median_s']:.2f}", f"{r['ratio']:.3f}",
                        f"{r['paired_ratio']:.3f}") for r in ratios["rows"]],
                      numeric=[False, True, False, True, True, True, True])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser("gpu_check", __doc__, quick="(no effect: every check is tiny)",
                           device_help="cuda (default where present) or cpu (the dry run)")
    parser.set_defaults(out=common.RESULTS / NAME)
    parser.add_argument("--skip", action="append", default=[], metavar="CHECK",
                        help="leave out a check (a name or a pattern such as 'divergence-*')")
    parser.add_argument("--ratio-case", default="mnist-stackedwae.v1:128", metavar="PRESET:BATCH",
                        help="the train_step case timed (default mnist-stackedwae.v1:128)")
    parser.add_argument("--ratio-repeats", type=int, default=21)
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    if args.device is None and not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine, nothing to check (`--device cpu` runs "
              "the same checks on the CPU, as a dry run)")
        return 0
    device = args.device or "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: --device {device}, but CUDA is not available", file=sys.stderr)
        return 2
    name = "CPU (dry run)" if device == "cpu" else torch.cuda.get_device_name(torch.device(device))
    report = common.header("gpu_check", "full", argv, device=device, device_name=name)
    with tempfile.TemporaryDirectory(prefix="hierot-gpu-check-") as work:
        report["checks"] = run_checks(device, args, Path(work))
    failed = [r["check"] for r in report["checks"] if r["status"] == "failed"]
    report["failed"] = failed
    for path in common.write(report, args.out, markdown, stem=slug(device)):
        print(f"wrote {path}")
    if failed:
        print(f"gpu_check: {len(failed)} check(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
