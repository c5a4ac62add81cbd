"""``arrays``: a data set from NumPy or PyTorch files holding ``x`` and, optionally, ``y``.

``.npy`` holds ``x`` alone (memory-mapped when read, so a file larger than memory can be
streamed); ``.npz`` and ``.pt`` hold ``x`` and ``y`` under the keys ``x_key`` and ``y_key`` (a
``.pt`` file may also be a bare tensor, ``x``). ``x`` is ``(n, *shape)``: uint8 (images, the model
sees ``x / 255``) or floating point (used as it is, in float32); ``y`` is ``(n,)`` integer labels
0..K-1. The test split is the ``test`` file, or else a fixed random ``test_fraction`` of ``train``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from hierot.components import DataSplits
from hierot.datasets._cache import Storage, StreamedRows, cache_dir_field, hold, storage_field
from hierot.datasets._common import Limit, fraction_split, int_labels, limit_field
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, datasets

SUFFIXES = (".npy", ".npz", ".pt")
CHUNK_BYTES = 1 << 26
"""Bytes of rows copied at a time into memory or the streaming cache."""


class ArraysOptions(ComponentOptions):
    """Options of ``arrays``."""

    train: str | None = Field(None, description="the training file, .npy, .npz or .pt (required)")
    test: str | None = Field(None, description="the test file; null: test_fraction of train")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of train held out")
    x_key: str = Field("x", min_length=1, description="name of the examples in .npz/.pt files")
    y_key: str = Field("y", min_length=1, description="name of the labels in .npz/.pt files")
    shape: tuple[int, ...] | None = Field(
        None, min_length=1, description="shape of one example, checked against the file")
    class_names: tuple[str, ...] | None = Field(
        None, min_length=1, description="names of labels 0..K-1; labels must lie in that range")
    limit: Limit = limit_field()
    storage: Storage = storage_field()
    cache_dir: str | None = cache_dir_field()

    def sample_shape(self) -> tuple[int, ...] | None:
        return self.shape


def read_arrays(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (memory-mapped for ``.npy``) and ``y`` (``None`` if absent) of one file."""
    if path.suffix not in SUFFIXES:
        raise HierotError(f"{path}: expected a .npy, .npz or .pt file")
    if not path.is_file():
        raise HierotError(f"{path}: no such file")
    try:
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                found = {k: f[k] for k in (x_key, y_key) if k in f.files}
                keys = f.files
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, ValueError, RuntimeError, KeyError, TypeError,
            zipfile.BadZipFile, pickle.UnpicklingError) as exc:  # what a damaged file raises
        raise HierotError(f"{path}: not a readable {path.suffix} file ({exc})") from None
    if path.suffix == ".pt":
        if isinstance(loaded, torch.Tensor):
            loaded = {x_key: loaded}
        if not isinstance(loaded, dict):
            raise HierotError(f"{path}: expected a tensor or a dict of tensors, found "
                              f"{type(loaded).__name__}")
        found = {k: _numpy(path, k, loaded[k]) for k in (x_key, y_key) if k in loaded}
        keys = list(loaded)
    if x_key not in found:
        raise HierotError(f"{path}: no array {x_key!r} (data.x_key); the file holds {keys}")
    return found[x_key], found.get(y_key)


def _numpy(path: Path, key: str, value) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise HierotError(f"{path}: {key!r} is a {type(value).__name__}, not a tensor")
    return value.numpy()


def check(path: Path, x: np.ndarray, y: np.ndarray | None, options: ArraysOptions) -> None:
    """Dtypes, shapes, lengths and label range of one file's arrays, naming the file."""
    if x.ndim < 2:
        raise HierotError(f"{path}: x has shape {x.shape}; expected (n, *shape) with n examples")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise HierotError(f"{path}: x has dtype {x.dtype}; expected uint8 (pixels 0..255) or a "
                          "floating-point dtype")
    if options.shape is not None and tuple(x.shape[1:]) != tuple(options.shape):
        raise HierotError(f"{path}: examples have shape {tuple(x.shape[1:])}, not the declared "
                          f"data.shape {tuple(options.shape)}")
    if y is None:
        return
    if y.ndim != 1 or len(y) != len(x):
        raise HierotError(f"{path}: y has shape {y.shape} for {len(x)} examples; expected "
                          f"({len(x)},), one label per example")
    if not np.issubdtype(y.dtype, np.integer):
        raise HierotError(f"{path}: y has dtype {y.dtype}; labels must be integers 0..K-1")
    top = len(options.class_names) if options.class_names else None
    if len(y) and (y.min() < 0 or (top is not None and y.max() >= top)):
        bad = int(np.argmax((y < 0) | (y >= (top if top is not None else np.inf))))
        allowed = f"0..{top - 1} (data.class_names)" if top is not None else ">= 0"
        raise HierotError(f"{path}: label {int(y[bad])} of example {bad} is out of range "
                          f"{allowed}")


def _rows(x: np.ndarray, rows: np.ndarray | None):
    """A callable yielding ``x[rows]`` (all of ``x`` for ``None``) in chunks, in order.

    A memory-mapped ``.npy`` file is read with ``pread`` rather than through its mapping, so
    copying a file larger than memory into the cache keeps the process small.
    """
    step = max(1, CHUNK_BYTES // max(1, x[:1].nbytes))
    n = len(x) if rows is None else len(rows)
    source: np.ndarray | StreamedRows = x
    if isinstance(x, np.memmap) and x.flags.c_contiguous and x.filename is not None:
        source = StreamedRows(Path(x.filename), x.shape, x.dtype, offset=x.offset)

    def chunks():
        for start in range(0, n, step):
            picked = np.arange(start, min(start + step, n)) if rows is None else \
                rows[start:start + step]
            block = source.read(picked) if isinstance(source, StreamedRows) else source[picked]
            yield np.asarray(block)

    return chunks


@datasets.register("arrays", options=ArraysOptions)
def arrays(options: ArraysOptions, *, seed: int) -> DataSplits:
    """Examples (and labels) from ``.npy``, ``.npz`` or ``.pt`` files.

    uint8 examples are held as uint8 with ``scale`` 255; floating-point ones as float32. Without a
    ``test`` file the test set is ``round(test_fraction * n)`` examples (at least 1) chosen by a
    permutation of ``RandomState(0)``, the same on every run; ``limit`` keeps the first ``limit``
    training examples. With ``storage: stream`` (or ``auto`` on a large file) the training rows
    are copied in chunks into the streaming cache and read batch by batch.

    Parameters
    ----------
    options:
        ``train``, ``test``, ``test_fraction``, ``x_key``, ``y_key``, ``shape``, ``class_names``,
        ``limit``, ``storage`` and ``cache_dir``.
    seed:
        Unused: the split does not depend on it.

    Returns
    -------
    DataSplits
        ``x`` uint8 (``scale`` 255) or float32; labels int64, or ``None`` when a file has no ``y``.

    Raises
    ------
    HierotError
        A file is missing, unreadable or not .npy/.npz/.pt; ``x`` has another dtype or not the
        declared shape; ``y`` has another length than ``x``, is not integer or is out of range.
    """
    if options.train is None:
        raise HierotError("data.train: required: a .npy, .npz or .pt file holding x (and y)")
    train_file = Path(options.train).expanduser()
    x, y = read_arrays(train_file, options.x_key, options.y_key)
    check(train_file, x, y, options)
    files = [train_file]
    if options.test is not None:
        test_file = Path(options.test).expanduser()
        files.append(test_file)
        test_x, test_y = read_arrays(test_file, options.x_key, options.y_key)
        check(test_file, test_x, test_y, options)
        if test_x.shape[1:] != x.shape[1:] or test_x.dtype != x.dtype:
            raise HierotError(f"{test_file}: x is {test_x.dtype} {test_x.shape[1:]}, the training "
                              f"file's {x.dtype} {x.shape[1:]}")
        if (test_y is None) != (y is None):
            has = train_file if y is not None else test_file
            raise HierotError(f"{test_file}: labels (y) in one file only, {has}; give both or "
                              "neither")
        train = np.arange(len(x))[: options.limit]
    else:
        train, test = fraction_split(len(x), options.test_fraction, options.limit,
                                     ("example", "examples"))
        test_x, test_y = x[np.sort(test)], None if y is None else y[np.sort(test)]
    dtype = np.uint8 if x.dtype == np.uint8 else np.float32
    whole = options.test is not None and len(train) == len(x)
    train_x = hold("arrays", options, files, (len(train), *x.shape[1:]), dtype,
                   _rows(x, None if whole else train))
    return DataSplits(
        train_x=train_x,
        test_x=torch.from_numpy(np.array(test_x, dtype=dtype)),
        train_y=None if y is None else int_labels(np.asarray(y)[train]),
        test_y=None if test_y is None else int_labels(np.asarray(test_y)),
        description=f"arrays {train_file.name}: {len(train)} train / {len(test_x)} test, "
        f"{'x'.join(map(str, x.shape[1:]))} {x.dtype}" + (", pixels / 255" if dtype == np.uint8
                                                          else ""),
        class_names=options.class_names,
        scale=255.0 if dtype == np.uint8 else None,
    )
