"""How training data are held: native uint8 against float32, streamed against in memory.

Three parts (``--part``, repeatable; default all):

``dtype``
    Two :class:`hierot.training.trainer.Trainer` on the same spec and the same images, one holding
    them as stored (uint8, converted per batch inside the step) and one holding
    ``DataSplits.as_float()`` (float32, as hierot did before), timed step by step alternately
    (paired: the median of the per-pair ratios and its quartiles), and the bytes each holds.
``stream``
    The same with one trainer reading its batches from the uint8 cache file (a ``pread`` a row)
    (``data.storage: stream``, :mod:`hierot.datasets._cache`) and one holding them in memory.
``rss``
    A synthetic uint8 ``arrays`` data set of ``--rss-gb`` GB (random pixels, 3 x 32 x 32) trained
    with ``storage: stream`` for ``--rss-steps`` steps (a two-layer MLP hierarchy, batch 100: the
    data, not the model, are what is measured) in a child process, its resident set size
    (VmRSS, VmHWM) read from ``/proc/self/status`` before and after; the file and the cache are
    written first, in chunks.

Defaults: ``mnist-stackedwae.v1`` on ``mnist-5k`` (4,500 real digits) at batch 128::

    nice -n 10 python -m benchmarks data_storage --threads 1 --quick
    nice -n 10 python -m benchmarks data_storage --threads 1 --part rss --rss-gb 2

Writes ``benchmarks/results/data_storage/<mode>-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

import hierot
from benchmarks import _common as common
from hierot.training import Trainer, single_process

NAME = "data_storage"
PARTS = ("dtype", "stream", "rss")


def trainer_on(spec, data, device: torch.device) -> Trainer:
    return Trainer(hierot.build(spec, data=data), None, single_process(device.type))


def held_bytes(trainer: Trainer) -> int:
    """Bytes of the training images the trainer holds (0 for a streamed set: read per batch)."""
    x = trainer.train_x
    return x.untyped_storage().nbytes() if isinstance(x, torch.Tensor) else 0


def paired(a: Trainer, b: Trainer, device, warmup: int, repeats: int) -> dict:
    """Alternate steps of ``a`` and ``b`` (which goes first alternates too); medians and the
    median and quartiles of the per-pair ratios a / b."""
    for _ in range(warmup):
        a._train_step()
        b._train_step()
    times_a, times_b = [], []
    for i in range(repeats):
        first, second = ((a, times_a), (b, times_b)) if i % 2 == 0 else ((b, times_b), (a, times_a))
        for trainer, times in (first, second):
            times.append(common.timed(trainer._train_step, device))
    ratios = sorted(x / y for x, y in zip(times_a, times_b))
    return {
        "a_median_s": statistics.median(times_a), "b_median_s": statistics.median(times_b),
        "paired_ratio": statistics.median(ratios),
        "paired_ratio_quartiles": [ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]],
        "a_times_s": times_a, "b_times_s": times_b,
    }


def dtype_part(args, device) -> dict:
    spec = hierot.load_spec(args.preset, [f"train.batch_size={args.batch}", "train.progress=false",
                                          f"device={device.type}", "data={name: mnist-5k}"])
    data = hierot.build(spec).data
    native, floats = trainer_on(spec, data, device), trainer_on(spec, data.as_float(), device)
    result = paired(native, floats, device, args.warmup, args.repeats)
    return {"part": "dtype", "a": "uint8 (per-batch float)", "b": "float32 held whole",
            "a_bytes": held_bytes(native), "b_bytes": held_bytes(floats),
            "svhn_train_extra_bytes": {"uint8": 604_388 * 3 * 32 * 32,
                                       "float32": 4 * 604_388 * 3 * 32 * 32}, **result}


def stream_part(args, device, cache_dir: Path) -> dict:
    spec = hierot.load_spec(args.preset, [f"train.batch_size={args.batch}", "train.progress=false",
                                          f"device={device.type}", "data={name: mnist-5k}"])
    pixels = hierot.build(spec).data
    folder = cache_dir / "mnist5k-arrays"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", x=pixels.train_x.numpy(), y=pixels.train_y.numpy())
    np.savez(folder / "test.npz", x=pixels.test_x.numpy(), y=pixels.test_y.numpy())
    trainers = {}
    for storage in ("stream", "memory"):
        data = {"name": "arrays", "train": str(folder / "train.npz"),
                "test": str(folder / "test.npz"), "storage": storage,
                "cache_dir": str(cache_dir / "cache")}
        spec_s = hierot.load_spec(args.preset, [
            f"train.batch_size={args.batch}", "train.progress=false", f"device={device.type}",
            f"data={json.dumps(data)}"])  # JSON is YAML
        trainers[storage] = trainer_on(spec_s, hierot.build(spec_s).data, device)
    result = paired(trainers["stream"], trainers["memory"], device, args.warmup, args.repeats)
    return {"part": "stream", "a": "stream (uint8 cache file)",
            "b": "memory (uint8 held whole)", "a_bytes": held_bytes(trainers["stream"]),
            "b_bytes": held_bytes(trainers["memory"]), **result}


RSS_CHILD = r"""
import json, sys, numpy as np
import hierot
from hierot.training import Trainer, single_process

def status():
    fields = dict(line.split(':', 1) for line in open('/proc/self/status'))
    return {k: int(fields[k].split()[0]) * 1024 for k in ('VmRSS', 'VmHWM')}

train, test, cache, steps = sys.argv[1:5]
before = status()
spec = hierot.load_spec({
    'data': {'name': 'arrays', 'train': train, 'test': test, 'storage': 'stream',
             'cache_dir': cache},
    'layers': [{'latent_shape': [16], 'encoder': {'name': 'mlp', 'hidden': [64]},
                'decoder': {'name': 'mlp', 'hidden': [64], 'output': 'sigmoid'},
                'decoder_head': 'deterministic'},
               {'latent_shape': [2], 'encoder': {'name': 'mlp', 'hidden': [16]},
                'decoder': {'name': 'mlp', 'hidden': [16]}}],
    'train': {'batch_size': 100, 'steps': int(steps), 'progress': False,
              'log_every': 50, 'checkpoint_every': 10**6}, 'device': 'cpu'})
built = hierot.build(spec)
loaded = status()
Trainer(built, None, single_process('cpu')).fit()
print(json.dumps({'before': before, 'loaded': loaded, 'after': status(),
                  'train_rows': len(built.data.train_x), 'shape': list(built.data.shape)}))
"""


def rss_part(args, work: Path) -> dict:
    n = int(args.rss_gb * 1e9) // (3 * 32 * 32)
    train, test = work / "big-train.npy", work / "big-test.npy"
    x = np.lib.format.open_memmap(train, mode="w+", dtype=np.uint8, shape=(n, 3, 32, 32))
    rng = np.random.default_rng(0)
    for start in range(0, n, 65_536):  # written in chunks: the writer's memory stays small
        stop = min(start + 65_536, n)
        x[start:stop] = rng.integers(0, 256, (stop - start, 3, 32, 32), dtype=np.uint8)
    x.flush()
    del x
    np.save(test, rng.integers(0, 256, (500, 3, 32, 32), dtype=np.uint8))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(train), str(test),
                          str(work / "cache"), str(args.rss_steps)],
                         check=True, capture_output=True, text=True, env=env)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    return {"part": "rss", "data_bytes": n * 3 * 32 * 32, "rows": n, "steps": args.rss_steps,
            **child}


def markdown(report: dict) -> str:
    lines = [f"# Data storage ({report['mode']}, {report['device']})", "",
             f"{report['created']}. Regenerate with:", "", f"    {report['command']}", "",
             common.machine_line(report), ""]
    timed = [r for r in report["results"] if r["part"] in ("dtype", "stream")]
    if timed:
        rows = [(r["part"], r["a"], r["b"], f"{1e3 * r['a_median_s']:.1f}",
                 f"{1e3 * r['b_median_s']:.1f}",
                 (f"{r['paired_ratio']:.3f} ({r['paired_ratio_quartiles'][0]:.3f}-"
                  f"{r['paired_ratio_quartiles'][1]:.3f})"),
                 f"{r['a_bytes'] / 1e6:.1f}", f"{r['b_bytes'] / 1e6:.1f}") for r in timed]
        lines += [(f"{report['preset']} at batch {report['batch']}, {report['repeats']} paired "
                   f"steps after {report['warmup']} warm-up."), ""]
        lines += common.markdown_table(["part", "a", "b", "a ms", "b ms", "paired a/b (quartiles)",
                                        "a MB held", "b MB held"], rows,
                                       numeric=[False, False, False, *[True] * 5])
        lines.append("")
    for r in report["results"]:
        if r["part"] == "rss":
            lines += [(f"Streaming {r['data_bytes'] / 1e9:.2f} GB ({r['rows']} rows "
                       f"{r['shape']}), {r['steps']} steps of a small MLP hierarchy at batch "
                       f"100: VmRSS {r['before']['VmRSS'] / 1e6:.0f} MB at start, "
                       f"{r['loaded']['VmRSS'] / 1e6:.0f} MB after build, "
                       f"{r['after']['VmRSS'] / 1e6:.0f} MB after training; peak (VmHWM) "
                       f"{r['after']['VmHWM'] / 1e6:.0f} MB."), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.parser(NAME, __doc__, quick="fewer warm-up steps and repeats")
    parser.add_argument("--part", action="append", choices=PARTS)
    parser.add_argument("--preset", default="mnist-stackedwae.v1")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--rss-gb", type=float, default=2.0)
    parser.add_argument("--rss-steps", type=int, default=200)
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the synthetic files and caches (default: a temporary one)")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    device = torch.device(common.default_device(args.device))
    mode = "quick" if args.quick else "full"
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    args.repeats = args.repeats or (11 if args.quick else 41)
    report = common.header(NAME, mode, argv, device=str(device), preset=args.preset,
                           batch=args.batch, warmup=args.warmup, repeats=args.repeats, results=[])
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for part in args.part or PARTS:
            if part == "dtype":
                r = dtype_part(args, device)
            elif part == "stream":
                r = stream_part(args, device, Path(tmp))
            else:
                r = rss_part(args, Path(tmp))
            report["results"].append(r)
            print({k: v for k, v in r.items() if not k.endswith("times_s")}, flush=True)
    parts = "-".join(args.part) if args.part else "all"
    stem = f"{mode}-{device.type}-{parts}{args.tag}"
    for path in common.write(report, args.out, markdown, stem=stem):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
