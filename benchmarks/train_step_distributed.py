"""Data-parallel training steps: throughput on 1 and K processes, and the cost of the gather.

Each configuration starts its worker processes afresh (``torch.multiprocessing``, spawn; gloo on
the CPU, nccl on CUDA, loopback rendezvous) with ``--threads`` intra-op threads per process,
builds the preset on random data of its shape (uniform in [0, 1]) and times
:class:`hierot.training.trainer.Trainer`'s own step (shard, objective, backward, DDP's gradient
all-reduce, Adam): warm-up steps, then ``--repeats`` steps, each between two barriers so that
every rank's step is inside the time; the median is reported. With ``--rounds R`` every
configuration is run R times, in rotation (so that drift in the machine's load hits all alike),
and the median of the R medians is reported; the load average before each run is recorded.

Configurations, for a global batch B and K processes:

* ``single``: one plain process (no torch.distributed), batch B: the baseline.
* ``ddp-1``: one process inside a process group of size 1 (DDP and the step machinery, no peers).
* ``ddp-K global`` / ``ddp-K local``: K processes on the same global batch B (strong scaling),
  the divergence on the gathered global batch or on each rank's B/K samples.
* ``ddp-K global, BatchNorm not synced``: the same without synchronised BatchNorm.
* ``ddp-K global, batch K*B``: K processes with B examples each (weak scaling).

Strong-scaling efficiency is ``t(single, B) / (K * t(K, B))``; weak-scaling efficiency is
``t(single, B) / t(K, K*B)`` (examples per second per process, against one process). The gather
itself (all-gather of the top latents forward, all-reduce of their gradient backward) and the
divergence forward + backward on B and on B/K samples are also timed in isolation on each rank.

    python -m benchmarks train_step_distributed --quick
    python -m benchmarks train_step_distributed --preset quickstart --batch 256 --processes 2

Writes ``benchmarks/results/train_step_distributed/<mode>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import _common as common
from benchmarks.train_step import random_data

NAME = "train_step_distributed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(preset: str, batch: int, device: str, divergence: str, sync_batchnorm: bool = True):
    import hierot

    return hierot.load_spec(preset, [f"train.batch_size={batch}", "train.progress=false",
                                     f"device={device}", f"distributed.divergence={divergence}",
                                     f"distributed.sync_batchnorm={str(sync_batchnorm).lower()}"])


def _median_time(fn, device, repeats: int, barrier=lambda: None, cpu: list | None = None) -> float:
    """Median wall time of ``fn``; ``cpu`` receives the median CPU time of this process."""
    times, cpu_times = [], []
    for _ in range(repeats):
        barrier()
        common.sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        common.sync(device)
        barrier()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if cpu is not None:
        cpu.append(statistics.median(cpu_times))
    return statistics.median(times)


# -- one configuration, in each worker process --------------------------------------------------
def _worker(rank: int, world: int, port: int, config: dict, results: str) -> None:
    torch.set_num_threads(config["threads"])
    import hierot
    from hierot.training import Trainer, single_process

    device_name = config["device"]
    spec = _spec(config["preset"], config["batch"], device_name, config["divergence"],
                 config["sync_batchnorm"])
    if config["distributed"]:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        from hierot.training.distributed import init

        runtime = init(device_name, spec.distributed)
    else:
        runtime = single_process(device_name)
    built = hierot.build(spec, data=random_data(spec, config["batch"]), gather=runtime.gather)
    trainer = Trainer(built, None, runtime)
    device = runtime.device
    barrier = runtime.barrier
    for _ in range(config["warmup"]):
        trainer._train_step()
    cpu: list[float] = []
    step = _median_time(trainer._train_step, device, config["repeats"], barrier, cpu)
    row = {**config, "rank": rank, "step_s": step, "cpu_s": cpu[0]}

    if config["distributed"] and config["components"]:
        from hierot.training.distributed import gather_rows

        top = built.model.latent_shapes[-1]
        local = config["batch"] // world
        z = torch.randn(local, *top, device=device, requires_grad=True)
        prior = torch.randn(config["batch"], *top, device=device)
        divergence = built.objective.divergence

        def gather() -> None:
            gather_rows(z).sum().backward()

        def on(n: int):
            x = torch.randn(n, *top, device=device, requires_grad=True)
            return lambda: divergence(x, prior[:n]).backward()

        for fn in (gather, on(config["batch"]), on(local)):
            fn()
        row["gather_s"] = _median_time(gather, device, config["repeats"], barrier)
        row["divergence_global_s"] = _median_time(on(config["batch"]), device, config["repeats"])
        row["divergence_local_s"] = _median_time(on(local), device, config["repeats"])
    if rank == 0:
        Path(results).write_text(json.dumps(row))


def run_config(config: dict) -> dict:
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.json")
        world = config["processes"]
        mp.start_processes(_worker, args=(world, _free_port(), config, out), nprocs=world,
                           start_method="spawn")
        return json.loads(Path(out).read_text())


# -- driver --------------------------------------------------------------------------------------
def configs(args) -> list[dict]:
    base = {"preset": args.preset, "device": args.device, "threads": args.threads,
            "warmup": args.warmup, "repeats": args.repeats, "components": False,
            "sync_batchnorm": True}
    k, b = args.processes, args.batch
    return [
        {**base, "name": "single", "processes": 1, "distributed": False, "batch": b,
         "divergence": "global"},
        {**base, "name": "ddp-1", "processes": 1, "distributed": True, "batch": b,
         "divergence": "global"},
        {**base, "name": f"ddp-{k} global", "processes": k, "distributed": True, "batch": b,
         "divergence": "global", "components": True},
        {**base, "name": f"ddp-{k} local", "processes": k, "distributed": True, "batch": b,
         "divergence": "local"},
        {**base, "name": f"ddp-{k} global, BatchNorm not synced", "processes": k,
         "distributed": True, "batch": b, "divergence": "global", "sync_batchnorm": False},
        {**base, "name": f"ddp-{k} global, batch {k}B", "processes": k, "distributed": True,
         "batch": k * b, "divergence": "global"},
    ]


def markdown(report: dict) -> str:
    rows, b = report["results"], report["batch"]
    loads = [run["load_before"] for r in rows for run in r["rounds"]]
    single = next(r for r in rows if r["name"] == "single")["step_s"]
    table = []
    for r in rows:
        k, t = r["processes"], r["step_s"]
        if r["batch"] == b:  # strong scaling
            efficiency = single / (k * t)
        else:  # weak scaling: K*B examples on K processes
            efficiency = single / t
        table.append((r["name"], k, r["batch"], f"{1e3 * t:.1f}", f"{1 / t:.2f}",
                      f"{r['batch'] / t:.0f}", f"{100 * efficiency:.0f} %",
                      f"{1e3 * r['cpu_s']:.1f}"))
    lines = [
        f"# Distributed training steps ({report['mode']}, {report['device']})",
        "",
        (f"{report['created']}; preset `{report['preset']}`, global batch B = {b}; median of "
        f"{report['repeats']} steps after {report['warmup']} warm-up (median over "
        f"{report['rounds']} round(s) run in rotation), {report['threads']} torch thread(s) per "
        f"process; 1-minute load average before the runs {min(loads):.1f} to {max(loads):.1f}."),
        common.machine_line(report),
        "",
        *common.markdown_table(["configuration", "processes", "global batch", "ms / step",
                                "steps / s", "examples / s", "scaling efficiency",
                                "CPU ms / step (rank 0)"], table),
    ]
    g = next((r for r in rows if "gather_s" in r), None)
    if g is not None:
        local = next(r for r in rows if r["name"].endswith("local"))
        lines += [
            "",
            (f"Global against local divergence at K = {g['processes']}: "
            f"{1e3 * (g['step_s'] - local['step_s']):+.2f} ms per step "
            f"({100 * (g['step_s'] / local['step_s'] - 1):+.1f} %). In isolation: the gather "
            f"(forward + backward, {b // g['processes']} x top latent per rank) "
            f"{1e3 * g['gather_s']:.3f} ms; the divergence forward + backward on B = {b} samples "
            f"{1e3 * g['divergence_global_s']:.3f} ms against {1e3 * g['divergence_local_s']:.3f} "
            f"ms on B/K = {b // g['processes']}."),
        ]
    lines += ["", ("Scaling efficiency: strong (same global batch) t(single) / (K t(K)); weak "
              "(K B examples) t(single, B) / t(K, K B). CPU time: rank 0's process (all its "
              "threads, gloo's included), to which waiting in a collective adds little; on a "
              "loaded machine it shows a step's work, the wall time also the waiting for peers.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="fewer warm-up steps and repeats", device="cpu",
                           device_help="cpu, or cuda (one GPU per process)", threads=1,
                           threads_help="torch threads per process")
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--batch", type=int, default=256, help="global batch B")
    parser.add_argument("--processes", type=int, default=2, help="K")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="runs of every configuration")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    mode = "quick" if args.quick else "full"
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 5)
    args.repeats = args.repeats or (11 if args.quick else 31)

    from hierot.spec import dump_spec

    report = common.header(
        NAME, mode, argv, device=args.device, preset=args.preset, batch=args.batch,
        threads=args.threads, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
        spec=dump_spec(_spec(args.preset, args.batch, args.device, "global")), results=[],
    )
    runs: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):
        for config in configs(args):
            load = os.getloadavg()[0]
            row = {**run_config(config), "load_before": load}
            runs.setdefault(config["name"], []).append(row)
            print(f"round {round_ + 1}  {row['name']:<36} {1e3 * row['step_s']:8.1f} ms/step  "
                  f"(load {load:.1f})", flush=True)
    for rows in runs.values():
        merged = {**rows[0], "rounds": rows}
        for key in ("step_s", "cpu_s", "gather_s", "divergence_global_s", "divergence_local_s"):
            if key in rows[0]:
                merged[key] = statistics.median(r[key] for r in rows)
        report["results"].append(merged)
    common.write(report, args.out, markdown, stem=f"{mode}-{args.device}")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
