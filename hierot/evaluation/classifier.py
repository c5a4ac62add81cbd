"""The small classifier whose features define the Fréchet classifier distance (FCD).

A labelled data set gets one classifier, trained by hierot on its training split and cached, so
that every run on that data set is measured in the same feature space:

* images ``(C, H, W)``: two 3x3 convolutions of stride 2 (16 and 32 channels, ReLU), an
  adaptive 4x4 average pool and a 128-unit hidden layer;
* anything else (vectors): an MLP with hidden layers of 256 and 128 units.

The features are the 128 activations of the last hidden layer. Inputs are standardised with the
training split's mean and standard deviation (one pair for images, per coordinate for vectors).
Training is short: Adam, batches of 128, five epochs bounded to 100..1000 steps, seed 0 (a few
seconds on a CPU for MNIST-sized images). On a CPU it runs on one thread: the network is so small
that more threads mostly wait on each other, and on a busy machine they make it several times
slower.

The cache lives in ``$HIEROT_CACHE/classifiers`` (default ``~/.cache/hierot/classifiers``), one
file per data set, keyed by the data set's options (less ``root`` and ``download``), the run's
seed (a split may depend on it), the data shape, the number of classes, the architecture version
and the training recipe. A file that does not load is replaced; delete one to retrain.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hierot._utils import one_thread, seeded
from hierot.components import DataSplits
from hierot.run import atomic_torch_save

CACHE_ENV = "HIEROT_CACHE"
"""Environment variable naming hierot's cache directory (default ``~/.cache/hierot``)."""
VERSION = 1
"""Architecture version; part of the cache key."""
FEATURES = 128
RECIPE: dict[str, Any] = {
    "epochs": 5, "batch_size": 128, "min_steps": 100, "max_steps": 1000, "lr": 3e-3, "seed": 0,
}
"""How the classifier is trained (:func:`train_classifier`); part of the cache key."""


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics kept as buffers."""

    mean: Tensor  # buffers, registered in __init__
    std: Tensor

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def fit(self, x: Tensor, per_coordinate: bool) -> None:
        if per_coordinate:
            self.mean.copy_(x.mean(0))
            self.std.copy_(x.std(0).clamp_min(1e-6))
        else:
            self.mean.fill_(float(x.mean()))
            self.std.fill_(max(float(x.std()), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Standardise, a feature body ending in ``FEATURES`` units, a linear output layer."""

    def __init__(self, shape: tuple[int, ...], classes: int):
        super().__init__()
        self.image = len(shape) == 3
        self.standardize = Standardize(shape if not self.image else ())
        if self.image:
            self.body = nn.Sequential(
                nn.Conv2d(shape[0], 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, FEATURES), nn.ReLU(),
            )
        else:
            self.body = nn.Sequential(
                nn.Flatten(), nn.Linear(math.prod(shape), 256), nn.ReLU(),
                nn.Linear(256, FEATURES), nn.ReLU(),
            )
        self.out = nn.Linear(FEATURES, classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.standardize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


@dataclass
class FeatureClassifier:
    """A trained classifier and what is known about it.

    Attributes
    ----------
    network:
        The classifier, in eval mode.
    test_accuracy:
        Its accuracy on the data set's test split.
    path:
        Its cache file.
    cached:
        ``True`` when loaded from the cache, ``False`` when trained by this call.
    train_seconds:
        How long training took (when it was trained).
    """

    network: Classifier
    test_accuracy: float
    path: Path
    cached: bool
    train_seconds: float

    @property
    def kind(self) -> str:
        return "cnn" if self.network.image else "mlp"

    @torch.no_grad()
    def features(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """The ``(n, 128)`` penultimate-layer features of ``x`` (CPU tensor)."""
        device = next(self.network.parameters()).device
        parts = [self.network.features(x[i:i + batch_size].to(device)).cpu()
                 for i in range(0, len(x), batch_size)]
        return torch.cat(parts)

    def info(self) -> dict:
        return {
            "kind": self.kind, "features": FEATURES, "test_accuracy": self.test_accuracy,
            "cache_file": str(self.path), "cached": self.cached,
            "train_seconds": round(self.train_seconds, 2),
        }


def cache_root() -> Path:
    """``$HIEROT_CACHE``, else ``~/.cache/hierot``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/hierot").expanduser()


def num_classes(data: DataSplits) -> int:
    labels = [y for y in (data.train_y, data.test_y) if y is not None]
    return int(max(int(y.max()) for y in labels)) + 1


def cache_file(data_options: dict, seed: int, data: DataSplits) -> Path:
    """The cache file of the classifier of this data set (see the module docstring)."""
    options = {k: v for k, v in data_options.items() if k not in ("root", "download")}
    key = json.dumps(
        {"options": options, "seed": seed, "shape": list(data.shape),
         "classes": num_classes(data), "version": VERSION, "recipe": RECIPE},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = str(options.get("name", "data")).replace("/", "_")
    return cache_root() / "classifiers" / f"{name}-{digest}.pt"


@torch.no_grad()
def accuracy(network: Classifier, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    network.eval()
    device = next(network.parameters()).device
    correct = sum(
        int((network(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def train_classifier(
    data: DataSplits, *, epochs: int, batch_size: int, min_steps: int, max_steps: int, lr: float,
    seed: int, device="cpu",
) -> Classifier:
    """Train a :class:`Classifier` on the training split: Adam, ``epochs`` epochs clipped to
    ``min_steps .. max_steps`` steps (:func:`feature_classifier` passes :data:`RECIPE`).

    On the CPU it trains with one intra-op thread, as the shipped weights were trained, so the
    result does not depend on the machine's thread count.
    """
    x, y = data.train_x, data.train_y
    if not isinstance(x, Tensor) or y is None:
        raise TypeError("train_classifier needs labelled training data in memory (as_float)")
    with one_thread(device):
        return _train(x, y, data, epochs=epochs, batch_size=batch_size, min_steps=min_steps,
                      max_steps=max_steps, lr=lr, seed=seed, device=device)


def _train(x: Tensor, y: Tensor, data: DataSplits, *, epochs: int, batch_size: int,
           min_steps: int, max_steps: int, lr: float, seed: int, device) -> Classifier:
    """The loop of :func:`train_classifier`, on checked inputs."""
    with seeded(seed):
        network = Classifier(data.shape, num_classes(data))
    network.standardize.fit(x, per_coordinate=not network.image)
    network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    per_epoch = max(1, math.ceil(len(x) / batch_size))
    steps = min(max(epochs * per_epoch, min_steps), max_steps)
    generator = torch.Generator().manual_seed(seed)
    order, position = torch.randperm(len(x), generator=generator), 0
    for _ in range(steps):
        if position + batch_size > len(order):
            order, position = torch.randperm(len(x), generator=generator), 0
        rows = order[position:position + batch_size]
        position += batch_size
        loss = nn.functional.cross_entropy(network(x[rows].to(device)), y[rows].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return network.eval()


def feature_classifier(
    data: DataSplits, data_options: dict, seed: int, *, device="cpu", retrain: bool = False
) -> FeatureClassifier:
    """The cached classifier of this data set, trained first when it is not in the cache.

    Parameters
    ----------
    data:
        The data set, with labels.
    data_options:
        The spec's ``data`` options as plain JSON (``spec.data.model_dump(mode="json")``).
    seed:
        The run's seed (part of the key: a data set's split may depend on it).
    device:
        Where to train and run the classifier.
    retrain:
        Ignore (and replace) a cached classifier.

    Raises
    ------
    ValueError
        If the data set has no labels.
    """
    if data.train_y is None or data.test_y is None:
        raise ValueError("the data set has no labels: no classifier can be trained")
    path = cache_file(data_options, seed, data)
    network = Classifier(data.shape, num_classes(data))
    if path.is_file() and not retrain:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            network.load_state_dict(state["model"])
        except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError):
            pass  # unreadable or from another architecture: train a new one below
        else:
            network.to(device).eval()
            return FeatureClassifier(network, float(state["test_accuracy"]), path, True, 0.0)
    started = time.perf_counter()
    network = train_classifier(data, device=device, **RECIPE)
    seconds = time.perf_counter() - started
    test_accuracy = accuracy(network, data.test_x, data.test_y)
    state = {"model": {k: v.cpu() for k, v in network.state_dict().items()},
             "test_accuracy": test_accuracy, "version": VERSION}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, path)
    return FeatureClassifier(network, test_accuracy, path, False, seconds)

__all__ = ["CACHE_ENV", "FEATURES", "RECIPE", "VERSION", "Classifier", "FeatureClassifier",
           "Standardize", "accuracy", "cache_file", "cache_root", "feature_classifier",
           "num_classes", "train_classifier"]
