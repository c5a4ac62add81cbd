"""A trained run loaded for evaluation, and batched encoding and generation.

``load_run(path)`` rebuilds the run's modules from its resolved ``spec.yaml``, loads the weights
of the last (or a named) checkpoint (the moving average of ``train.ema`` when the run kept one,
unless ``weights="raw"``) and puts the model in eval mode (BatchNorm uses its running
statistics). Everything here runs without gradients, in batches, and returns CPU tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from hierot._utils import seeded
from hierot.builder import Built, build
from hierot.components import DataSplits
from hierot.errors import HierotError
from hierot.model import Hierarchy
from hierot.objectives import Objective
from hierot.run import Run, check_architecture, load_run_spec, resolve_device
from hierot.spec.schema import Spec

EVAL_BATCH = 500
"""Batch size of encoding, decoding and generation (the objective uses the training batch)."""


@dataclass
class LoadedRun:
    """One run directory at one checkpoint, ready to evaluate.

    Attributes
    ----------
    run_dir:
        The run directory.
    spec:
        Its resolved spec.
    built:
        Data, model and objective built from the spec, with the checkpoint's weights, eval mode.
    step:
        The training step of the checkpoint.
    checkpoint:
        The checkpoint file.
    device:
        Where the model is.
    weights:
        ``"ema"`` (the moving average of ``train.ema``) or ``"raw"`` (the trained weights).
    """

    run_dir: Run
    spec: Spec
    built: Built
    step: int
    checkpoint: Path
    device: torch.device
    weights: str = "raw"

    @property
    def model(self) -> Hierarchy:
        return self.built.model

    @property
    def objective(self) -> Objective:
        """The run's objective: its posterior encodes (``encode`` below takes it or the model)."""
        return self.built.objective

    @property
    def data(self) -> DataSplits:
        return self.built.data

    @property
    def train_x(self) -> Tensor:
        """The training split in memory, as :func:`load_run` holds it (``as_float`` read the
        first rows of a streamed one)."""
        x = self.data.train_x
        if not isinstance(x, Tensor):
            raise TypeError("LoadedRun.data.train_x is streamed; load_run reads it into memory")
        return x

    @property
    def depth(self) -> int:
        return self.built.model.depth


def load_run(
    path: str | Path, checkpoint: int | str | None = None, *, device: str | None = None,
    data: DataSplits | None = None, weights: str | None = None,
) -> LoadedRun:
    """Load ``path`` at checkpoint step ``checkpoint`` (default: the last one).

    Parameters
    ----------
    path:
        A run directory written by ``hierot train``.
    checkpoint:
        The step of the checkpoint to load; ``None`` for the last; ``"best"`` for ``best.pt``
        (the best held-out evaluation, written when ``train.eval_every`` is set).
    device:
        ``cpu``, ``cuda``, ... (default: the spec's ``device``, ``auto`` meaning CUDA if present).
    data:
        The run's data set, already loaded (skips loading it again).
    weights:
        ``"ema"``: the moving average of the weights (``train.ema``); ``"raw"``: the weights
        the optimiser trained; ``None`` (default): the average when the checkpoint holds one.
        The average's BatchNorm statistics are those the checkpoint holds: recomputed for the
        averaged weights (``train.ema.batchnorm: recompute``) or the raw model's (``raw``; see
        :mod:`hierot.training.ema`).

    Raises
    ------
    HierotError
        If ``path`` is not a run directory or holds no such checkpoint, or ``weights="ema"``
        and the checkpoint holds no average;
        :class:`~hierot.errors.CheckpointError` names a checkpoint file that cannot be read or
        does not fit the spec.
    """
    if weights not in (None, "ema", "raw"):
        raise HierotError(f"--weights: {weights!r} is not one of ema, raw")
    run_dir = Run(path)
    run_dir.require()
    spec = load_run_spec(run_dir.path)
    file = run_dir.checkpoint(checkpoint)
    state = run_dir.load_checkpoint(checkpoint)  # a bad file is named, with the other steps
    if weights == "ema" and "ema" not in state:
        raise HierotError(
            f"--weights ema: {file} holds no moving average of the weights (the run did not set "
            f"train.ema); use --weights raw"
        )
    chosen = "ema" if weights != "raw" and "ema" in state else "raw"
    built = build(spec, data=data)
    built = replace(built, data=built.data.as_float())  # evaluation reads float values
    key = "ema" if chosen == "ema" else "model"
    check_architecture(built.model, state[key], str(file))
    built.model.load_state_dict(state[key])
    where = resolve_device(device or spec.device)
    built.objective.to(where)
    built.objective.eval()
    return LoadedRun(run_dir, spec, built, int(state["step"]), file, where, chosen)


def chunks(n: int, size: int = EVAL_BATCH) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def encode(
    model: Hierarchy | Objective, x: Tensor, *, sample: bool = False,
    device: torch.device | str = "cpu",
) -> list[Tensor]:
    """Codes z_1..z_N of every row of ``x`` (posterior means, or samples when ``sample``).

    Given an objective, its own posterior (:meth:`~hierot.objectives.Objective.encode`: the
    ladder's for ``lvae``); given the model, the Markov encoder chain.
    """
    layers: list[list[Tensor]] = [[] for _ in range(model.depth)]
    for part in chunks(len(x)):
        _, codes = model.encode(x[part].to(device), sample=sample)
        for i, z in enumerate(codes):
            layers[i].append(z.cpu())
    return [torch.cat(z) for z in layers]


@torch.no_grad()
def encoding_means(
    model: Hierarchy | Objective, x: Tensor, *, device: torch.device | str = "cpu"
) -> list[Tensor]:
    """The posterior mean of every layer at one draw of what it conditions on, per row.

    E[z_i | z_{i-1}] at a sampled z_{i-1} for the Markov encoder (z_0 = x); for an objective,
    the means of its own posterior (the ladder's conditions on the drawn z_{i+1}).
    """
    layers: list[list[Tensor]] = [[] for _ in range(model.depth)]
    for part in chunks(len(x)):
        encodings, _ = model.encode(x[part].to(device), sample=True)
        for i, q in enumerate(encodings):
            layers[i].append(q.mean.cpu())
    return [torch.cat(z) for z in layers]


@torch.no_grad()
def decode(
    model: Hierarchy | Objective, z: Tensor, layer: int, *, device: torch.device | str = "cpu"
) -> Tensor:
    """x from z_layer through the decoders' means (``model.decode``), batched."""
    return torch.cat([model.decode(z[part].to(device), layer).cpu() for part in chunks(len(z))])


@torch.no_grad()
def generate(model: Hierarchy, n: int, *, seed: int = 0) -> Tensor:
    """n samples of the generative model (ancestral sampling from the prior), seeded."""
    with seeded(seed):
        return torch.cat([model.generate(part.stop - part.start).cpu() for part in chunks(n)])


def subset(n: int, k: int, seed: int = 0) -> Tensor:
    """``min(n, k)`` distinct indices of ``range(n)``, a seeded random choice, sorted."""
    if k >= n:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:k].sort().values
