"""Train the classifiers whose weights ship with hierot (the ``classifier`` feature extractor).

``python -m benchmarks train_feature_nets [--only NAME ...] [--out DIR]`` trains, for each of
``mnist-5k``, ``fashion-mnist`` and ``digits`` (default options), the small classifier of
:mod:`hierot.evaluation.classifier` with its recipe (:data:`~hierot.evaluation.classifier.RECIPE`,
seed 0, one CPU thread), measures its test accuracy, and writes ``classifier-NAME.vVERSION.pt``
(the state dict) and ``manifest.json`` (file, sha256, shape, classes, test accuracy, recipe,
torch version) into ``hierot/evaluation/weights/`` (or ``--out``). Run it once per release of a
new version; a published version is never retrained in place (bump
``hierot.evaluation.classifier.VERSION``). It takes about a minute on one CPU thread (most of it
fashion-mnist's 1,000 steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

NAMES = ("mnist-5k", "fashion-mnist", "digits")
WEIGHTS = Path(__file__).resolve().parent.parent / "hierot" / "evaluation" / "weights"


def train_one(name: str, out: Path, *, max_steps: int | None = None) -> dict:
    """Train and save the classifier of data set ``name``; its manifest record.

    ``max_steps`` caps the recipe's steps (a CI-sized run; the shipped weights use the recipe).
    """
    from hierot.evaluation.classifier import (
        RECIPE,
        VERSION,
        accuracy,
        num_classes,
        train_classifier,
    )
    from hierot.evaluation.features import sha256
    from hierot.registry import datasets

    entry = datasets.get(name)
    options = entry.options(name=name) if "name" in entry.options.model_fields else entry.options()
    data = entry.factory(options, seed=0).as_float()
    recipe = dict(RECIPE)
    if max_steps is not None:
        recipe["max_steps"] = min(recipe["max_steps"], max_steps)
        recipe["min_steps"] = min(recipe["min_steps"], recipe["max_steps"])
    started = time.perf_counter()
    network = train_classifier(data, device="cpu", **recipe)  # one thread, as the recipe says
    seconds = time.perf_counter() - started
    file = out / f"classifier-{name}.v{VERSION}.pt"
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in network.state_dict().items()}, file)
    return {
        "file": file.name, "sha256": sha256(file), "version": VERSION, "dataset": name,
        "dataset_options": options.model_dump(mode="json", exclude={"root", "download"}),
        "shape": list(data.shape), "classes": num_classes(data),
        "test_accuracy": round(accuracy(network, data.test_x, data.test_y), 6),
        "test_points": len(data.test_x), "recipe": recipe, "torch": torch.__version__,
        "train_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks train_feature_nets",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    manifest_file = args.out / "manifest.json"
    records = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    for name in args.only:
        records[name] = train_one(name, args.out)
        print(f"{name}: test accuracy {records[name]['test_accuracy']:.4f}, "
              f"{records[name]['train_seconds']} s, sha256 {records[name]['sha256'][:16]}")
    manifest_file.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    print(f"written {manifest_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
