"""A missing, truncated or corrupt MNIST or Fashion-MNIST IDX file is named with what is wrong
with it, in Python and at the command line (issue 11, section 3).
"""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from _fixtures import TOY_SPEC as VALID  # tests/_fixtures.py

from hierot.cli import main
from hierot.datasets import mnist
from hierot.errors import HierotError
from hierot.registry import datasets


def write_idx(path: Path, array: np.ndarray, cut: int = 0) -> None:
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) - cut])


def mnist_files(raw: Path, n: int = 6) -> dict[str, Path]:
    rng = np.random.RandomState(0)
    files = {}
    for (images, labels) in mnist.IDX_FILES.values():
        write_idx(raw / images, rng.randint(0, 256, (n, 28, 28)))
        write_idx(raw / labels, rng.randint(0, 10, n))
        files[images], files[labels] = raw / images, raw / labels
    return files


def load(name: str, **options):
    return datasets.build(datasets.tagged_options(name)(name=name, **options), seed=0)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_a_missing_idx_file_is_named(tmp_path, name, folder):
    files = mnist_files(tmp_path / folder / "raw")
    files["t10k-images-idx3-ubyte"].unlink()
    with pytest.raises(HierotError,
                       match=r"MNIST file t10k-images-idx3-ubyte \(or .gz\) not found"):
        load(name, root=str(tmp_path))
    for path in files.values():
        path.unlink(missing_ok=True)
    with pytest.raises(HierotError, match=r"MNIST not found"):  # none there: the data set
        load(name, root=str(tmp_path))


def test_truncated_idx_file_is_named_with_its_sizes(tmp_path):
    files = mnist_files(tmp_path / "MNIST" / "raw")
    path = files["train-images-idx3-ubyte"]
    path.write_bytes(path.read_bytes()[:-100])
    expected = 16 + 6 * 28 * 28
    with pytest.raises(HierotError,
                       match=rf"truncated or corrupt IDX file .*expected {expected} bytes, "
                             rf"found {expected - 100}") as info:
        load("mnist", root=str(tmp_path))
    assert str(path) in str(info.value) and "not found" not in str(info.value)


@pytest.mark.parametrize("content, said", [
    (b"", "empty file (0 bytes)"),
    (b"garbage, not labels at all", "is not an IDX file"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 6]) + bytes([1, 2, 3, 4, 5, 99]),
     "labels must be 0..9, found 1..99"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5]) + bytes(5), "expected 6 labels"),
])
def test_bad_label_file_is_named(tmp_path, content, said):
    files = mnist_files(tmp_path / "MNIST" / "raw")
    files["t10k-labels-idx1-ubyte"].write_bytes(content)
    with pytest.raises(HierotError, match=re.escape(said)) as info:
        load("mnist", root=str(tmp_path))
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_corrupt_gzip_idx_is_named(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    for path in mnist_files(debian).values():
        path.rename(path.with_name(path.name + ".gz"))
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(b"\0\0\x08\x01")[:-4])
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setenv("HIEROT_DATA", str(tmp_path / "nothing"))
    with pytest.raises(HierotError, match="truncated or corrupt"):
        load("fashion-mnist")


def test_fashion_mnist_explicit_root_is_used_or_refused(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    mnist_files(debian)  # a good copy elsewhere must not be used instead
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", debian)
    files = mnist_files(tmp_path / "root" / "FashionMNIST" / "raw")
    files["train-labels-idx1-ubyte"].write_bytes(files["train-labels-idx1-ubyte"].read_bytes()[:-2])
    with pytest.raises(HierotError, match="train-labels-idx1-ubyte: truncated or corrupt"):
        load("fashion-mnist", root=str(tmp_path / "root"))


def test_data_errors_reach_the_command_line_cleanly(tmp_path, capsys):
    files = mnist_files(tmp_path / "MNIST" / "raw")
    files["train-labels-idx1-ubyte"].write_bytes(b"")
    spec = dict(VALID, data={"name": "mnist", "root": str(tmp_path)})
    spec["layers"] = [dict(VALID["layers"][0]), VALID["layers"][1]]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "train-labels-idx1-ubyte: empty file" in err
    assert not (tmp_path / "run").exists()
