"""``arrays``: .npy, .npz and .pt files, the test split, dtypes and every bad input it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hierot.cli import main
from hierot.errors import HierotError
from hierot.registry import datasets


def load(**options):
    return datasets.build(datasets.tagged_options("arrays")(name="arrays", **options), seed=0)


def pixels(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 1, 6, 6), dtype=np.uint8), rng.integers(0, 3, n)


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_x_and_y_files_with_a_test_file_are_read_exactly(tmp_path, suffix):
    (x, y), (tx, ty) = pixels(20), pixels(5, seed=1)
    for name, a, b in (("train", x, y), ("test", tx, ty)):
        if suffix == ".npz":
            np.savez(tmp_path / f"{name}.npz", x=a, y=b)
        else:
            tensors = {"x": torch.from_numpy(a), "y": torch.from_numpy(b)}
            torch.save(tensors, tmp_path / f"{name}.pt")
    data = load(train=str(tmp_path / f"train{suffix}"), test=str(tmp_path / f"test{suffix}"),
                shape=(1, 6, 6), class_names=("a", "b", "c"))
    assert data.train_x.dtype == torch.uint8 and data.scale == 255.0
    assert np.array_equal(data.train_x.numpy(), x) and data.train_y.tolist() == y.tolist()
    assert np.array_equal(data.test_x.numpy(), tx) and data.test_y.tolist() == ty.tolist()
    assert data.class_names == ("a", "b", "c")


def test_npy_is_unlabelled_float_stays_float_and_the_split_is_fixed(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    data = load(train=str(tmp_path / "x.npy"), test_fraction=0.2)
    assert data.train_y is None and data.scale is None and data.train_x.dtype == torch.float32
    assert len(data.train_x) == 40 and len(data.test_x) == 10
    both = torch.cat([data.train_x, data.test_x])
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, x.astype(np.float32).tolist()))
    again = load(train=str(tmp_path / "x.npy"), test_fraction=0.2)
    assert torch.equal(data.train_x, again.train_x)


def test_a_bare_tensor_in_a_pt_file_is_x(tmp_path):
    torch.save(torch.from_numpy(pixels(10)[0]), tmp_path / "x.pt")
    data = load(train=str(tmp_path / "x.pt"), limit=3)
    assert data.train_y is None and data.train_x.shape == (3, 1, 6, 6)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(HierotError, match="list.pt: expected a tensor or a dict of tensors"):
        load(train=str(tmp_path / "list.pt"))
    (tmp_path / "cut.pt").write_bytes((tmp_path / "x.pt").read_bytes()[:50])
    with pytest.raises(HierotError, match="cut.pt: not a readable .pt file"):
        load(train=str(tmp_path / "cut.pt"))


def bad_file(tmp_path: Path, case: str) -> tuple[dict, str]:
    x, y = pixels(10)
    path = tmp_path / "train.npz"
    options = {"train": str(path)}
    if case == "x and y lengths differ":
        np.savez(path, x=x, y=y[:7])
        return options, "y has shape (7,) for 10 examples"
    if case == "wrong dtype":
        np.savez(path, x=x.astype(np.int32), y=y)
        return options, "x has dtype int32; expected uint8"
    if case == "wrong declared shape":
        np.savez(path, x=x, y=y)
        return {**options, "shape": [3, 6, 6]}, "examples have shape (1, 6, 6), not the declared"
    if case == "label out of range":
        y[4] = 3
        np.savez(path, x=x, y=y)
        return {**options, "class_names": ["a", "b", "c"]}, "label 3 of example 4 is out of range"
    if case == "negative label":
        y[2] = -1
        np.savez(path, x=x, y=y)
        return options, "label -1 of example 2 is out of range"
    if case == "missing x":
        np.savez(path, images=x)
        return options, "no array 'x' (data.x_key); the file holds ['images']"
    if case == "corrupt file":
        path.write_bytes(b"PK\x03\x04 not really a zip")
        return options, "train.npz: not a readable .npz file"
    if case == "missing file":
        return options, "train.npz: no such file"
    raise AssertionError(case)


CASES = ["x and y lengths differ", "wrong dtype", "wrong declared shape", "label out of range",
         "negative label", "missing x", "corrupt file", "missing file"]


@pytest.mark.parametrize("case", CASES)
def test_bad_arrays_are_named_and_exit_2_writing_nothing(tmp_path, capsys, case):
    options, message = bad_file(tmp_path, case)
    with pytest.raises(HierotError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        load(**options)
    spec = {"data": {"name": "arrays", **options},
            "layers": [{"latent_shape": [2], "encoder": {"name": "mlp"},
                        "decoder": {"name": "mlp"}}],
            "train": {"batch_size": 4, "steps": 1, "progress": False}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["train", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "train.npz" in err and message.split("(")[0] in err
    assert not (tmp_path / "run").exists()


def test_a_test_fraction_that_leaves_no_training_example_is_named(tmp_path):
    np.save(tmp_path / "x.npy", pixels(3)[0])
    with pytest.raises(HierotError, match=r"data\.test_fraction: 0\.9 of 3 examples leaves no "
                                          r"training example"):
        load(train=str(tmp_path / "x.npy"), test_fraction=0.9)
    held_out = load(train=str(tmp_path / "x.npy"), test_fraction=0.4)  # round(1.2) = 1
    assert (len(held_out.train_x), len(held_out.test_x)) == (2, 1)
