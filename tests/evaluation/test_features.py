"""The ``features`` registry: shipped classifier weights, Inception and DINOv2 from local files.

The shipped weights are checked against their manifest and retrained by the committed script
(``python -m benchmarks train_feature_nets``) to the accuracy the manifest records. Inception and
DINOv2 are tested offline on weights a test initialises at random and saves; bad files, shapes and
options are errors naming the option, exit status 2, and leave the run directory unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _fixtures import two_layers  # tests/_fixtures.py

import hierot
from hierot.cli import main
from hierot.errors import HierotError
from hierot.evaluation import features as feats
from hierot.evaluation.classifier import CACHE_ENV
from hierot.evaluation.features import build_extractor, manifest, parse_features, shipped_path
from hierot.evaluation.pretrained import dino_preprocess, inception_preprocess
from hierot.registry import datasets, features


def load(name: str, **options):
    entry = datasets.get(name)
    return entry.factory(entry.options(**options), seed=0).as_float()


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def extractor(text, data, name="digits"):
    return build_extractor(parse_features(text), data=data, data_options={"name": name}, seed=0)


# -- the registry and the shipped classifiers ------------------------------------------------
def test_registry_lists_the_extractors(capsys):
    assert {"classifier", "inception", "dinov2"} <= set(features.names())
    assert main(["list", "features"]) == 0
    out = capsys.readouterr().out
    assert "classifier" in out and "inception" in out and "dinov2" in out


def test_shipped_weights_match_their_manifest():
    records = manifest()
    assert set(records) == {"mnist-5k", "fashion-mnist", "digits"}
    assert {k for k, v in feats.SHIPPED_FOR.items() if v in records} == {
        "mnist-5k", "mnist", "fashion-mnist", "digits"}
    for name, record in records.items():
        path = shipped_path(name)
        assert feats.sha256(path) == record["sha256"], name
        assert 100_000 < path.stat().st_size < 1_000_000, name  # a few hundred KB
        assert record["classes"] == 10 and record["test_accuracy"] > 0.8
        assert record["file"] == f"classifier-{name}.v{record['version']}.pt"


@pytest.mark.parametrize("name", ["digits", "mnist-5k"])
def test_the_script_reproduces_the_shipped_accuracy(name, tmp_path):
    """The full recipe (a few seconds for these two; fashion-mnist's is in the slow test)."""
    from benchmarks.train_feature_nets import train_one

    record = train_one(name, tmp_path)
    shipped = manifest()[name]
    assert record["test_accuracy"] == pytest.approx(shipped["test_accuracy"], abs=0.01)
    assert record["recipe"] == shipped["recipe"] and record["shape"] == shipped["shape"]
    assert (tmp_path / shipped["file"]).is_file()


@pytest.mark.slow
def test_the_script_reproduces_fashion_mnist(tmp_path):
    from benchmarks.train_feature_nets import train_one

    try:
        load("fashion-mnist")
    except HierotError:
        pytest.skip("fashion-mnist is not installed")
    record = train_one("fashion-mnist", tmp_path)
    assert record["test_accuracy"] == pytest.approx(
        manifest()["fashion-mnist"]["test_accuracy"], abs=0.01)


def test_shipped_classifier_is_loaded_and_checked(digits, monkeypatch):
    ex = extractor("classifier", digits)
    info = ex.info()
    assert info["source"] == "shipped" and info["sha256"] == manifest()["digits"]["sha256"]
    f = ex.features(digits.test_x)
    assert f.shape == (len(digits.test_x), 128)
    accuracy = (ex.predict(f) == digits.test_y).double().mean()
    assert float(accuracy) == pytest.approx(manifest()["digits"]["test_accuracy"], abs=1e-6)
    tampered = {**manifest(), "digits": {**manifest()["digits"], "sha256": "0" * 64}}
    monkeypatch.setattr(feats, "manifest", lambda: tampered)
    with pytest.raises(HierotError, match="sha256"):
        extractor("classifier", digits)


def test_classifier_choices(digits, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    trained = extractor("{name: classifier, weights: trained-here}", digits)
    assert trained.info()["source"] == "trained-here" and trained.info()["cached"] is False
    toy = load("toy-hierarchy", n_train=200, n_test=50)
    with pytest.raises(HierotError, match="no classifier ships for data set 'toy-hierarchy'"):
        extractor("{name: classifier, weights: shipped}", toy, "toy-hierarchy")
    # mnist-5k's shipped weights on 8 x 8 digits: the shape does not fit
    with pytest.raises(HierotError, match=r"take data of shape \(1, 28, 28\)"):
        extractor("classifier", digits, "mnist")
    with pytest.raises(HierotError, match="weights"):
        parse_features("{name: classifier, weights: downloaded}")
    with pytest.raises(HierotError, match="did you mean 'inception'"):
        parse_features("inceptoin")


# -- Inception and DINOv2 from a file --------------------------------------------------------------
@pytest.fixture(scope="module")
def inception_file(tmp_path_factory) -> Path:
    from hierot.evaluation.pretrained import inception_network

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "inception.pt"
    torch.save(inception_network().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def dino_file(tmp_path_factory) -> Path:
    pytest.importorskip("timm")
    from hierot.evaluation.pretrained import dino_network

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "dino.pt"
    torch.save({"model": dino_network("vit_small_patch14_dinov2").state_dict()}, path)
    return path


def test_preprocessing_follows_the_documented_recipes():
    x = torch.rand(2, 1, 8, 8)
    inc = inception_preprocess(x)
    assert inc.shape == (2, 3, 299, 299) and -1 <= float(inc.min()) and float(inc.max()) < 1
    assert torch.equal(inc[:, 0], inc[:, 2])  # grey repeated
    flat = inception_preprocess(torch.full((1, 3, 8, 8), 0.5))  # 127.5 rounds to 128 -> 0
    assert torch.allclose(flat, torch.zeros_like(flat), atol=1e-5)
    dino = dino_preprocess(torch.ones(1, 3, 8, 8))
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert dino.shape == (1, 3, 224, 224)
    assert torch.allclose(dino[0, :, 100, 100], expected, atol=1e-4)


def test_inception_from_a_file(digits, inception_file, dino_file):
    ex = extractor({"name": "inception", "weights": str(inception_file)}, digits)
    f = ex.features(digits.test_x[:2])
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and ex.dim == 2048
    assert torch.equal(f, ex.features(digits.test_x[:2]))  # eval mode: deterministic
    assert ex.predict(f) is None
    assert ex.info()["sha256"] == feats.sha256(inception_file)
    with pytest.raises(HierotError, match="does not fit the architecture"):
        extractor({"name": "inception", "weights": str(dino_file)}, digits)
    with pytest.raises(HierotError, match="does not exist"):
        extractor({"name": "inception", "weights": "/no/such/file.pt"}, digits)
    toy = load("toy-hierarchy", n_train=200, n_test=50)
    with pytest.raises(HierotError, match=r"needs images \(C, H, W\)"):
        extractor({"name": "inception", "weights": str(inception_file)}, toy, "toy-hierarchy")


def test_dinov2_from_a_file(digits, dino_file, inception_file, tmp_path):
    ex = extractor({"name": "dinov2", "weights": str(dino_file)}, digits)
    f = ex.features(digits.test_x[:2])
    assert f.shape == (2, 384) and torch.isfinite(f).all() and ex.dim == 384
    with pytest.raises(HierotError, match="does not fit the architecture"):
        extractor({"name": "dinov2", "weights": str(inception_file)}, digits)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a state dict")
    with pytest.raises(HierotError, match="does not load"):
        extractor({"name": "dinov2", "weights": str(junk)}, digits)


# -- bad input through the command line ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    hierot.fit({"data": {"name": "digits", "limit": 300}, "layers": two_layers(),
                "train": {"batch_size": 32, "steps": 2, "progress": False}}, out=out)
    return out


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("arguments, message", [
    (["--features", "{name: inception, weights: /no/such.pt}"], "--features inception: weights"),
    (["--features", "nope"], "Valid: classifier, dinov2, inception"),
    (["--features", "{name: dinov2}"], "--features dinov2: weights"),
    (["--samples", str(10**12)], "--samples 1000000000000 needs about"),
    (["--samples", "3"], "--samples must be at least 10"),
    (["--resamples", "2"], "--resamples must be at least 10"),
])
def test_bad_input_exits_2_and_changes_nothing(tiny_run, arguments, message, capsys):
    before = snapshot(tiny_run)
    assert main(["eval", str(tiny_run), *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert snapshot(tiny_run) == before
    assert not (tiny_run / "eval.json").exists()


def test_eval_records_the_feature_space(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--samples", "60", "--resamples", "10",
                 "--no-per-layer"]) == 0
    written = json.loads((tiny_run / "eval.json").read_text())
    protocol = written["sample_quality"]["protocol"]
    assert protocol["features"] == {"name": "classifier", "source": "shipped", "version": 1,
                                    "sha256": manifest()["digits"]["sha256"], "dim": 128,
                                    "weights": "digits"}
    (tiny_run / "eval.json").unlink()
