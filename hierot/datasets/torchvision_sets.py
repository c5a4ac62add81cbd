"""``cifar10`` and ``celeba``: the files a user already has, in torchvision's layouts.

CIFAR-10 (Krizhevsky, 2009) is read from ``ROOT/cifar-10-batches-py/`` (torchvision's
``CIFAR10.base_folder``): the Python pickles ``data_batch_1`` ... ``data_batch_5`` and
``test_batch``, each a dict with ``data`` (N x 3072 uint8, the red, green, then blue 32 x 32
planes) and ``labels`` (N ints 0..9), and ``batches.meta`` with ``label_names``.

CelebA (Liu et al., 2015) is read from ``ROOT/celeba/`` (``CelebA.base_folder``): the aligned
JPEGs in ``img_align_celeba/`` and ``list_eval_partition.txt`` (``000001.jpg 0`` per line: 0
train, 1 valid, 2 test). Faces are centre-cropped to ``crop`` x ``crop`` and resized to ``size``
x ``size`` (140 and 64, as in the WAE paper's CelebA experiments, Tolstikhin et al., 2018),
unlabelled.

The files are parsed here, as torchvision parses them, without its MD5 checks of every file
(which fail for any subset of the data) and without downloading: nothing is fetched.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from hierot.components import DataSplits
from hierot.datasets._cache import Storage, cache_dir_field, hold, storage_field
from hierot.datasets._common import (
    DATA_ENV,
    Limit,
    as_uint8,
    data_root,
    int_labels,
    limit_field,
    not_found,
    root_field,
)
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, datasets

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)
CELEBA_FOLDER = "celeba"
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CHUNK = 1024


class Cifar10Options(ComponentOptions):
    """Options of ``cifar10``."""

    root: str | None = root_field()
    limit: Limit = limit_field()
    storage: Storage = storage_field()
    cache_dir: str | None = cache_dir_field()

    def sample_shape(self) -> tuple[int, ...]:
        return (3, 32, 32)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 pickle as images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)``."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
            AttributeError, IndexError) as exc:
        raise HierotError(f"{path}: not a CIFAR-10 batch (a pickled dict with data and labels: "
                          f"{exc!r})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or \
            labels.shape != (len(data),):
        raise HierotError(f"{path}: expected data uint8 (n, 3072) and n labels, found "
                          f"{data.dtype} {data.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise HierotError(f"{path}: labels must be 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_names(folder: Path) -> tuple[str, ...] | None:
    meta = folder / "batches.meta"
    if not meta.is_file():
        return None
    try:
        with open(meta, "rb") as f:
            names = tuple(str(n) for n in pickle.load(f, encoding="latin1")["label_names"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError) as exc:
        raise HierotError(f"{meta}: not CIFAR-10's batches.meta ({exc!r})") from None
    return names if len(names) == 10 else None


@datasets.register("cifar10", options=Cifar10Options)
def cifar10(options: Cifar10Options, *, seed: int) -> DataSplits:
    """CIFAR-10 from the user's files: 50,000 train / 10,000 test, 3 x 32 x 32 uint8.

    Reads the five training batches and the test batch of ``ROOT/cifar-10-batches-py/``
    (never downloads); ``limit`` keeps the first ``limit`` training images in file order.

    Parameters
    ----------
    options:
        ``root``, ``limit``, ``storage`` and ``cache_dir``.
    seed:
        Unused: the split is the official one.

    Returns
    -------
    DataSplits
        Images ``(n, 3, 32, 32)`` uint8 (``scale`` 255), labels int64 0..9 (airplane ... truck).

    Raises
    ------
    DataNotFoundError
        A batch file is missing; :class:`HierotError` when one is not a CIFAR-10 pickle.
    """
    folder = data_root(options.root) / CIFAR_FOLDER
    files = [folder / name for name in CIFAR_TRAIN + CIFAR_TEST]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise not_found("CIFAR-10", missing, [
            ("download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
             f"and unpack it in {folder.parent}"),
            f"or point root (or ${DATA_ENV}) at the folder holding {CIFAR_FOLDER}/"])
    train = [read_cifar_batch(f) for f in files[:5]]
    test_x, test_y = read_cifar_batch(files[5])
    x = np.concatenate([b[0] for b in train])[: options.limit]
    y = np.concatenate([b[1] for b in train])[: options.limit]
    train_x = hold("cifar10", options, files, x.shape, np.uint8, lambda: [x])
    return DataSplits(
        train_x=train_x, test_x=as_uint8(test_x), train_y=int_labels(y),
        test_y=int_labels(test_y),
        description=f"cifar10: {len(x)} train / {len(test_x)} test, 3x32x32 RGB, pixels / 255",
        class_names=_cifar_names(folder), scale=255.0,
    )


class CelebaOptions(ComponentOptions):
    """Options of ``celeba``."""

    root: str | None = root_field()
    size: int = Field(64, ge=8, le=512, description="side of the square images")
    crop: int | None = Field(140, ge=8, description="side of the centre crop taken first; "
                             "null: the largest centred square")
    splits: tuple[Literal["train", "valid", "test"], ...] = Field(
        ("train",), min_length=1, description="partitions of list_eval_partition.txt trained on")
    test_splits: tuple[Literal["train", "valid", "test"], ...] = Field(
        ("test",), min_length=1, description="partitions held out")
    limit: Limit = limit_field()
    storage: Storage = storage_field()
    cache_dir: str | None = cache_dir_field()

    def sample_shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)


def read_partition(path: Path) -> list[tuple[str, int]]:
    """``(file name, partition)`` of each line of ``list_eval_partition.txt``."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise HierotError(f"{path}:{number}: expected '<image>.jpg 0|1|2', found {line!r}")
        rows.append((parts[0], int(parts[1])))
    return rows


def read_face(path: Path, size: int, crop: int | None) -> np.ndarray:
    """One aligned face as uint8 ``(3, size, size)``: centre crop, then bilinear resize."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise HierotError(f"{path}: not a readable image ({exc})") from None
    width, height = image.size
    side = min(width, height, crop or min(width, height))
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


@datasets.register("celeba", options=CelebaOptions)
def celeba(options: CelebaOptions, *, seed: int) -> DataSplits:
    """CelebA's aligned faces from the user's files, 3 x ``size`` x ``size`` uint8, unlabelled.

    Trains on the ``splits`` partitions of ``list_eval_partition.txt`` (162,770 train faces)
    and holds out ``test_splits`` (19,962 test faces), in file order; ``limit`` keeps the first
    ``limit`` training faces. At 64 x 64 all 202,599 faces take 2.5 GB as uint8 (9.9 GB as
    float32); ``storage: auto`` streams them when memory is short.

    Parameters
    ----------
    options:
        ``root``, ``size``, ``crop``, ``splits``, ``test_splits``, ``limit``, ``storage`` and
        ``cache_dir``.
    seed:
        Unused: the split is the official one.

    Returns
    -------
    DataSplits
        Images ``(n, 3, size, size)`` uint8 (``scale`` 255), no labels.

    Raises
    ------
    DataNotFoundError
        ``list_eval_partition.txt`` or ``img_align_celeba/`` is missing; :class:`HierotError`
        names a listed image that is missing or unreadable, or a malformed line.
    """
    folder = data_root(options.root) / CELEBA_FOLDER
    listing, images = folder / "list_eval_partition.txt", folder / "img_align_celeba"
    if not listing.is_file() or not images.is_dir():
        raise not_found("CelebA", [listing, images], [
            ("download img_align_celeba.zip and list_eval_partition.txt from "
             f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unpack them in {folder}"),
            f"or point root (or ${DATA_ENV}) at the folder holding {CELEBA_FOLDER}/"])
    rows = read_partition(listing)
    wanted = {CELEBA_SPLITS[s] for s in options.splits}
    held = {CELEBA_SPLITS[s] for s in options.test_splits}
    if wanted & held:
        raise HierotError("data.test_splits: must not repeat a partition of data.splits")
    train = [images / name for name, part in rows if part in wanted][: options.limit]
    test = [images / name for name, part in rows if part in held]
    for what, files in (("data.splits", train), ("data.test_splits", test)):
        if not files:
            raise HierotError(f"{what}: {listing} lists no image in these partitions")
    shape = (3, options.size, options.size)

    def faces(files: list[Path]) -> np.ndarray:
        return np.stack([read_face(f, options.size, options.crop) for f in files])

    def chunks():
        for start in range(0, len(train), CHUNK):
            yield faces(train[start:start + CHUNK])

    test_x = as_uint8(faces(test))
    train_x = hold("celeba", options, [listing, *train], (len(train), *shape), np.uint8, chunks)
    return DataSplits(
        train_x=train_x, test_x=test_x,
        description=f"celeba: {len(train)} train / {len(test)} test faces, 3x{options.size}x"
        f"{options.size}, crop {options.crop}, pixels / 255",
        scale=255.0,
    )
