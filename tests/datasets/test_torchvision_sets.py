"""``cifar10`` and ``celeba`` on small files written in the real formats (nothing downloaded)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hierot.datasets import torchvision_sets as tv
from hierot.errors import DataNotFoundError, HierotError
from hierot.registry import datasets

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def load(name: str, **options):
    return datasets.build(datasets.tagged_options(name)(name=name, **options), seed=0)


def write_cifar(root: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python version: pickled dicts of data (n x 3072 uint8, R then G then B planes)
    and labels, in cifar-10-batches-py/, with batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in (*tv.CIFAR_TRAIN, *tv.CIFAR_TEST):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        batch = {"batch_label": f"{name} of 5", "labels": labels, "data": data,
                 "filenames": [f"img_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (data, labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def test_cifar10_reads_the_python_batches(tmp_path):
    written = write_cifar(tmp_path)
    data = load("cifar10", root=str(tmp_path))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.class_names == tuple(CIFAR_NAMES)
    first, labels = written["data_batch_1"]
    red = first[0, :1024].reshape(32, 32)  # the first 1024 values are the red plane, row-major
    assert np.array_equal(data.train_x[0, 0].numpy(), red)
    assert np.array_equal(data.train_x[0].numpy().reshape(-1), first[0])
    assert data.train_y[:4].tolist() == labels
    assert data.test_y.tolist() == written["test_batch"][1]
    assert len(load("cifar10", root=str(tmp_path), limit=6).train_x) == 6


def test_cifar10_missing_and_corrupt_batches_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="data_batch_1"):
        load("cifar10", root=str(tmp_path))
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02 truncated")
    with pytest.raises(HierotError, match="data_batch_3: not a CIFAR-10 batch"):
        load("cifar10", root=str(tmp_path))


def write_celeba(root: Path, partitions: list[int]) -> Path:
    """CelebA's aligned layout: celeba/img_align_celeba/000001.jpg ... (178 x 218 JPEGs) and
    celeba/list_eval_partition.txt."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    lines = []
    for i, part in enumerate(partitions, 1):
        face = np.zeros((218, 178, 3), dtype=np.uint8)
        face[39:179, 19:159] = 40 * i  # the centre 140 x 140 square, one grey level per face
        Image.fromarray(face).save(folder / f"{i:06}.jpg", quality=95)
        lines.append(f"{i:06}.jpg {part}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_celeba_crops_resizes_and_follows_the_partition_file(tmp_path):
    write_celeba(tmp_path, [0, 0, 2, 1, 0])
    data = load("celeba", root=str(tmp_path), size=16)
    assert data.train_x.shape == (3, 3, 16, 16) and data.test_x.shape == (1, 3, 16, 16)
    assert data.train_y is None and data.scale == 255.0
    levels = data.train_x.float().mean(dim=(1, 2, 3))  # faces 1, 2 and 5, in file order
    assert torch.allclose(levels, torch.tensor([40.0, 80.0, 200.0]), atol=3)
    assert abs(float(data.test_x.float().mean()) - 120) < 3  # face 3: the crop is uniform
    with_valid = load("celeba", root=str(tmp_path), size=16, splits=["train", "valid"])
    assert len(with_valid.train_x) == 4


def test_celeba_bad_files_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="list_eval_partition.txt"):
        load("celeba", root=str(tmp_path))
    folder = write_celeba(tmp_path, [0, 0, 2])
    (folder / "000002.jpg").write_bytes(b"\xff\xd8 cut short")
    with pytest.raises(HierotError, match="000002.jpg: not a readable image"):
        load("celeba", root=str(tmp_path), size=16)
    listing = tmp_path / "celeba" / "list_eval_partition.txt"
    listing.write_text("000001.jpg 0\n000002.jpg seven\n")
    with pytest.raises(HierotError, match="list_eval_partition.txt:2: expected"):
        load("celeba", root=str(tmp_path), size=16)
