r"""Feature extractors: the spaces in which generated samples are compared with data.

Every sample metric of ``hierot eval`` (FD, KID, precision/recall, density/coverage) is a
statement about two sets of *features*; two numbers are comparable only when they were measured
in the same space. The extractors live in the ``features`` registry (plug-ins: entry-point group
``hierot.features``), each a factory ``(options, *, data, data_options, seed, device) ->
extractor`` whose result has

* ``features(x) -> (n, d)`` float CPU features of images or vectors ``x`` shaped like the data;
* ``predict(f) -> (n,)`` predicted classes of features ``f`` (``None`` when it has no classes:
  the class histogram is then skipped);
* ``info() -> dict``: what identifies the space (name, version, weights file and its sha256), as
  recorded in ``eval.json``.

Built-ins:

``classifier``
    The small classifier of :mod:`hierot.evaluation.classifier`. For ``mnist-5k`` (which also
    serves ``mnist``), ``fashion-mnist`` and ``digits`` its weights **ship with hierot**
    (``hierot/evaluation/weights/``, trained once by ``python -m benchmarks train_feature_nets``,
    sha256 checked at every load), so every machine measures in the same space. Other labelled
    data sets keep the classifier trained on this machine and cached (labelled
    ``trained-here`` in ``eval.json``: comparable only with runs on the same machine and torch).
``inception``, ``dinov2``
    Pretrained networks loaded from a weights file the user names
    (:mod:`hierot.evaluation.pretrained`); nothing is downloaded.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from hierot.components import DataSplits
from hierot.errors import HierotError
from hierot.evaluation._files import sha256
from hierot.registry import ComponentOptions, features

WEIGHTS_PACKAGE = "hierot.evaluation.weights"
MANIFEST = "manifest.json"
SHIPPED_FOR = {"mnist-5k": "mnist-5k", "mnist": "mnist-5k", "fashion-mnist": "fashion-mnist",
               "digits": "digits"}
"""Data set -> the shipped classifier that measures it (``mnist`` is measured by ``mnist-5k``'s:
the same digits, the same pixels)."""


def manifest() -> dict:
    """The shipped classifiers: ``{name: {file, sha256, shape, classes, test_accuracy, ...}}``."""
    resource = files(WEIGHTS_PACKAGE).joinpath(MANIFEST)
    return json.loads(resource.read_text(encoding="utf-8")) if resource.is_file() else {}


def shipped_path(name: str) -> Path:
    return Path(str(files(WEIGHTS_PACKAGE).joinpath(manifest()[name]["file"])))


class ClassifierFeatureOptions(ComponentOptions):
    """Options of the ``classifier`` extractor."""

    weights: Literal["auto", "shipped", "trained-here"] = Field(
        "auto", description="shipped: the weights that ship with hierot (an error for a data set "
        "without); trained-here: the classifier trained on this machine and cached; auto: "
        "shipped when the data set has them, else trained-here")


class ClassifierExtractor:
    """Features of a :class:`~hierot.evaluation.classifier.Classifier` (penultimate layer)."""

    def __init__(self, classifier, source: str, extra: dict):
        self.classifier, self.source, self.extra = classifier, source, extra
        self.dim = int(classifier.network.out.in_features)

    def features(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)

    @torch.no_grad()
    def predict(self, f: Tensor) -> Tensor:
        device = next(self.classifier.network.parameters()).device
        return self.classifier.network.out(f.to(device)).argmax(1).cpu()

    @property
    def classes(self) -> int:
        return int(self.classifier.network.out.out_features)

    def info(self) -> dict:
        info = self.classifier.info()
        if self.source == "shipped":  # no cache: the file is the package's
            info = {k: v for k, v in info.items() if k not in ("cache_file", "cached",
                                                                "train_seconds")}
        return {"name": "classifier", "source": self.source, "dim": self.dim, **info,
                **self.extra}


def load_shipped(name: str, data: DataSplits, *, device="cpu"):
    """The shipped classifier ``name`` (checked against the manifest's sha256 and shape)."""
    from hierot.evaluation.classifier import Classifier, FeatureClassifier

    record = manifest()[name]
    path = shipped_path(name)
    found = sha256(path)
    if found != record["sha256"]:
        raise HierotError(f"features classifier: the shipped weights {path} have sha256 {found}, "
                          f"the manifest records {record['sha256']}: reinstall hierot")
    if tuple(record["shape"]) != tuple(data.shape):
        raise HierotError(f"features classifier: the shipped weights of {name} take data of shape "
                          f"{tuple(record['shape'])}, this data set's is {tuple(data.shape)}; "
                          "use {name: classifier, weights: trained-here}")
    network = Classifier(tuple(record["shape"]), int(record["classes"]))
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    network.to(device).eval()
    return FeatureClassifier(network, float(record["test_accuracy"]), path, True, 0.0)


@features.register("classifier", options=ClassifierFeatureOptions)
def classifier(options: ClassifierFeatureOptions, *, data: DataSplits, data_options: dict,
               seed: int, device="cpu") -> ClassifierExtractor:
    """A small classifier of the data set's labels: shipped weights, else trained here, cached."""
    from hierot.evaluation.classifier import feature_classifier

    name = SHIPPED_FOR.get(str(data_options.get("name")))
    available = name is not None and name in manifest()
    if options.weights == "shipped" and not available:
        have = sorted(k for k, v in SHIPPED_FOR.items() if v in manifest())
        raise HierotError(f"features classifier: weights: shipped, but no classifier ships for "
                          f"data set {data_options.get('name')!r} (shipped for: {have}); use "
                          "weights: trained-here or auto")
    if options.weights != "trained-here" and name is not None and available:
        record = manifest()[name]
        extra = {"weights": name, "version": record["version"], "sha256": record["sha256"],
                 "trained_on": record["dataset"], "recipe": record["recipe"]}
        return ClassifierExtractor(load_shipped(name, data, device=device), "shipped", extra)
    if data.train_y is None or data.test_y is None:
        raise HierotError("features classifier: the data set has no labels to train a classifier "
                          "on; choose another extractor (--features inception or dinov2 with "
                          f"a weights file; known: {features.names()})")
    trained = feature_classifier(data, data_options, seed, device=device)
    extra = {"sha256": sha256(trained.path),
             "note": "trained on this machine and cached: comparable only with runs measured by "
                     "this cache file"}
    return ClassifierExtractor(trained, "trained-here", extra)


def parse_features(text: str | dict) -> ComponentOptions:
    """Options of an extractor from a name or a YAML mapping (``{name: inception, weights: F}``).

    Raises
    ------
    HierotError
        For an unknown name (with the valid ones) or invalid options (naming the field).
    """
    return features.parse(text, label="--features")


def build_extractor(options: ComponentOptions, *, data: DataSplits, data_options: dict,
                    seed: int, device="cpu"):
    """The extractor ``options`` for this data set."""
    return features.build(options, data=data, data_options=data_options, seed=seed, device=device)


from hierot.evaluation import pretrained  # noqa: F401  (registers inception and dinov2)

__all__ = ["ClassifierExtractor", "ClassifierFeatureOptions", "build_extractor", "manifest",
           "parse_features", "sha256"]
