"""Run by ``tests/training/test_distributed.py`` under torchrun (2 CPU processes, gloo): every
distributed scenario in one launch, each rank writing what it saw to ``ROOT/rank<r>.json``.

    torchrun --nproc_per_node 2 --master_addr 127.0.0.1 --master_port PORT \
        tests/training/_distributed_worker.py ROOT

Importing this module (the test does too) registers the tiny ``dist-blobs`` data set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from hierot.components import DataSplits
from hierot.registry import ComponentOptions, datasets


class BlobOptions(ComponentOptions):
    n_train: int = 128
    dim: int = 12
    nan_row: int = -1  # a training example made NaN (a bad batch on the rank that draws it)


def blobs(options: BlobOptions, *, seed: int) -> DataSplits:
    """Two Gaussian blobs in ``dim`` dimensions, fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    n = options.n_train + 32
    centre = torch.where(torch.rand(n, 1, generator=gen) < 0.5, 1.0, -1.0)
    x = centre + 0.5 * torch.randn(n, options.dim, generator=gen)
    if options.nan_row >= 0:
        x[options.nan_row] = float("nan")
    return DataSplits(x[: options.n_train], x[options.n_train :])


if "dist-blobs" not in datasets:
    datasets.add("dist-blobs", blobs, options=BlobOptions)


def layer(latent: int, hidden: int, head: str = "deterministic") -> dict:
    return {"latent_shape": [latent], "encoder": {"name": "mlp", "hidden": [hidden]},
            "decoder": {"name": "mlp", "hidden": [hidden]}, "encoder_head": head}


# Deterministic encoders and closed-form costs: no noise before the gather, so a 2-process run
# equals one process on the same global batches (the prior samples come from the shared stream).
DETERMINISTIC = {
    "data": {"name": "dist-blobs"},
    "layers": [layer(6, 24), layer(2, 16)],
    "objective": {"name": "stacked-wae",
                  "weights": {"schedule": "explicit", "reconstruction": [1.0, 0.5], "match": 5.0}},
    "optimizer": {"lr": 0.01},
    "train": {"batch_size": 32, "steps": 4, "log_every": 1, "checkpoint_every": 2,
              "progress": False},
}
# Gaussian encoders and a Monte Carlo cost: every rank draws its own noise before the gather.
GAUSSIAN = {
    **DETERMINISTIC,
    "layers": [{**layer(6, 24, "gaussian"), "cost": {"name": "l1"}}, layer(2, 16, "gaussian")],
    "divergence": {"name": "sliced-wasserstein", "n_projections": 8},
}
FLAT = {**DETERMINISTIC, "objective": {**DETERMINISTIC["objective"], "name": "wae"},
        "train": {**DETERMINISTIC["train"], "steps": 3}}


def noise_streams() -> dict:
    """Draws in this rank's own phase and in the shared phase of one step."""
    import torch.distributed as dist

    from hierot.training.distributed import from_environment

    runtime = from_environment("cpu")
    before = torch.get_rng_state()
    with runtime.step():
        own = torch.randn(4)
        runtime.gather(torch.zeros(1, 1))
        shared = torch.randn(4)
    after_step = torch.get_rng_state()
    expected = torch.Generator().set_state(before)
    every = [None] * runtime.world_size
    dist.all_gather_object(every, (own.tolist(), shared.tolist()))
    return {
        "own_differs": every[0][0] != every[1][0],
        "shared_equal": every[0][1] == every[1][1],
        "shared_is_the_plain_stream": torch.equal(shared, torch.randn(4, generator=expected)),
        "stream_continues": torch.equal(after_step, expected.get_state()),
    }


def stop_together(runtime) -> str:
    """A non-finite objective on rank 1 only: rank 0 must stop too (not wait in the backward)."""
    from torch import nn

    from hierot.errors import NonFiniteLossError
    from hierot.objectives.terms import Terms
    from hierot.training.distributed import DataParallelObjective

    class Objective(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x):
            terms = Terms()
            terms.add("rec_x", self.w * x.sum() * (float("nan") if runtime.rank == 1 else 1.0), 1.0)
            return terms

    try:
        terms = DataParallelObjective(Objective(), runtime)(torch.ones(2, 1))
    except NonFiniteLossError as exc:
        return str(exc)
    return "finite" if torch.isfinite(terms.total) else "not finite"


EMA = ["train.ema={decay: 0.5, start_step: 1}", "train.skip_update={grad_norm_above: 1.0e+6}"]


def averages_on_every_rank(runtime) -> dict:
    """``train.ema`` under DDP: each rank's averages and their recomputed BatchNorm statistics
    (as lists), gathered."""
    import torch.distributed as dist

    import hierot
    from hierot.training.trainer import Trainer

    spec = hierot.load_spec(DETERMINISTIC, EMA)
    trainer = Trainer(hierot.build(spec, gather=runtime.gather), None, runtime)
    trainer.fit()
    mine = {n: a.tolist() for n, a in zip(trainer.ema.names, trainer.ema.averages)}
    mine.update({n: s.tolist() for n, s in trainer.ema.statistics.items()})  # BatchNorm's
    every = [None] * runtime.world_size
    dist.all_gather_object(every, mine)
    return {"same": all(e == every[0] for e in every), "rank0": every[0],
            "grad_norm_logged": trainer.updates.skipped == 0}


def skip_together(runtime) -> dict:
    """A NaN training example, on the rank that draws it only (local divergence, unsynchronised
    BatchNorm): with ``train.skip_update`` every rank skips that update and training goes on."""
    import torch.distributed as dist

    import hierot
    from hierot.training.trainer import Trainer

    spec = hierot.load_spec(DETERMINISTIC, [
        "data={name: dist-blobs, nan_row: 5}", "distributed.divergence=local",
        "distributed.sync_batchnorm=false", "train.skip_update={nonfinite: true}"])
    trainer = Trainer(hierot.build(spec, gather=runtime.gather), None, runtime)
    trainer.fit()
    mine = [p.detach().flatten() for p in trainer.model.parameters()]
    every = [None] * runtime.world_size
    dist.all_gather_object(every, [t.tolist() for t in mine])
    return {"steps": trainer.step, "skipped": trainer.updates.skipped,
            "finite": all(bool(torch.isfinite(t).all()) for t in mine),
            "same": all(e == every[0] for e in every)}


def main(root: Path) -> None:
    import hierot
    from hierot.cli import main as cli
    from hierot.errors import HierotError
    from hierot.spec.loading import dump_spec
    from hierot.training.distributed import from_environment

    runtime = from_environment("cpu")  # joins the process group; later fits reuse it
    seen: dict = {"runtime": type(runtime).__name__}
    spec_file = root / "deterministic.yaml"
    if runtime.is_main:
        spec_file.write_text(dump_spec(hierot.load_spec(DETERMINISTIC)))
    runtime.barrier()

    # the command line, default run directory (rank 0's timestamp wins)
    os.chdir(root)
    seen["cli_exit"] = cli(["train", str(spec_file)])
    # 2 steps, then a resume to 4
    hierot.fit(DETERMINISTIC, out=root / "stopped", overrides=["train.steps=2"])
    hierot.fit(resume=root / "stopped", overrides=["train.steps=4"])
    # Gaussian encoders: 4 straight == 2 + resume + 2
    hierot.fit(GAUSSIAN, out=root / "gaussian")
    hierot.fit(GAUSSIAN, out=root / "gaussian-stopped", overrides=["train.steps=2"])
    hierot.fit(resume=root / "gaussian-stopped", overrides=["train.steps=4"])
    hierot.fit(FLAT, out=root / "flat")
    hierot.fit(DETERMINISTIC, out=root / "unsynced-bn",
               overrides=["distributed.sync_batchnorm=false"])
    hierot.fit(DETERMINISTIC, out=root / "local", overrides=["distributed.divergence=local"])
    try:
        hierot.fit(DETERMINISTIC, out=root / "odd", overrides=["train.batch_size=33"])
    except HierotError as exc:
        seen["odd_batch"] = str(exc)
    seen["noise"] = noise_streams()
    seen["stop_together"] = stop_together(runtime)
    seen["ema"] = averages_on_every_rank(runtime)
    seen["skip_together"] = skip_together(runtime)
    (root / f"rank{runtime.rank}.json").write_text(json.dumps(seen))
    # leave together: no rank tears its gloo connections down while the other still runs
    runtime.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
