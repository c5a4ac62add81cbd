"""Shared machinery of the built-in data sets: where files live, IDX files, scaling, splits."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from hierot.errors import DataNotFoundError, HierotError

DATA_ENV = "HIEROT_DATA"
"""Environment variable naming the default data root."""
DEFAULT_ROOT = "~/.cache/hierot/data"
"""Data root when neither the ``root`` option nor ``$HIEROT_DATA`` is set."""
SPLIT_SEED = 0
"""Seed of the fixed train/test permutation of data sets that ship without a test split."""

Limit = Annotated[int, Field(ge=1)] | None

DIGIT_NAMES = tuple(str(d) for d in range(10))
"""Class names of the digit data sets (MNIST, mnist-5k, digits, SVHN): label k is the digit k."""


def root_field() -> Any:
    return Field(None, description=f"data directory; null means ${DATA_ENV}, else {DEFAULT_ROOT}")


def download_field() -> Any:
    return Field(False, description="download the files into root when they are missing")


def limit_field() -> Any:
    return Field(None, description="keep at most this many training examples (the first ones)")


def data_root(root: str | None) -> Path:
    """The data root: ``root`` if given, else ``$HIEROT_DATA``, else ``~/.cache/hierot/data``."""
    chosen = root or os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return Path(chosen).expanduser()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), plain or gzip-compressed (``.gz``).

    The header is two zero bytes, a type code (``0x08`` unsigned byte, ``0x09`` signed byte,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions
    ``k``, then ``k`` big-endian uint32 sizes; the values follow, big-endian, in C order.

    Returns
    -------
    numpy.ndarray
        The values in native byte order, shaped as the header says.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # a cut-off or damaged .gz
        raise HierotError(f"{path}: truncated or corrupt file ({exc})") from None
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if not data:
        raise HierotError(f"{path}: empty file (0 bytes), not an IDX file")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in types:
        raise HierotError(f"{path} is not an IDX file (bad header)")
    ndim, offset = data[3], 4 + 4 * data[3]
    if len(data) < offset:
        raise HierotError(
            f"{path}: truncated or corrupt IDX file (a {ndim}-D header needs {offset} bytes, "
            f"found {len(data)})"
        )
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    dtype = np.dtype(types[data[2]])
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise HierotError(
            f"{path}: truncated or corrupt IDX file (header says shape {shape}: expected "
            f"{expected} bytes, found {len(data)})"
        )
    values = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def as_uint8(values: np.ndarray | Tensor) -> Tensor:
    """Whole-number pixels 0..255 as a new contiguous uint8 tensor (values unchanged).

    Data sets hold images this way, with ``DataSplits.scale`` saying what to divide by; the
    training step converts each batch (:meth:`hierot.components.DataSplits.to_float`).
    """
    return torch.from_numpy(np.array(np.asarray(values), dtype=np.uint8, order="C", copy=True))


def unit_float(pixels: np.ndarray | Tensor, scale: float = 255.0) -> Tensor:
    """Integer pixels (0..``scale``) as a new float32 tensor in [0, 1], whole.

    The conversion the data sets made before they kept native dtypes; ``DataSplits.to_float``
    does the same per batch.
    """
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(pixels.astype(np.float32))
    else:
        pixels = pixels.to(torch.float32, copy=True)
    return pixels.div_(scale)


def int_labels(labels: np.ndarray | Tensor) -> Tensor:
    """Labels as a new int64 tensor ``(n,)``."""
    if isinstance(labels, np.ndarray):
        return torch.from_numpy(labels.astype(np.int64).reshape(-1))
    return labels.to(torch.int64, copy=True).reshape(-1)


def fixed_split(n: int, test_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of a random split that is the same on every run.

    The permutation comes from NumPy's legacy ``RandomState(SPLIT_SEED)``, whose stream is frozen
    across NumPy versions, so the test set never changes with the run's seed or the library.
    """
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    return order[test_size:], order[:test_size]


def fraction_split(
    n: int, fraction: float, limit: int | None, noun: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fixed_split` holding out ``fraction`` of ``n`` (at least one), the training indices
    cut to ``limit``; ``noun`` (singular, plural) names the items in the error when no training
    item would be left."""
    n_test = max(1, round(fraction * n))
    if n_test >= n:
        raise HierotError(f"data.test_fraction: {fraction} of {n} {noun[1]} leaves no training "
                          f"{noun[0]}")
    train, test = fixed_split(n, n_test)
    return train[:limit], test


def not_found(
    what: str, looked: Iterable[str | os.PathLike], how: Iterable[str]
) -> DataNotFoundError:
    """A :class:`DataNotFoundError` listing every place looked in and every way to get the data."""
    lines = [f"{what} not found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    lines.append("To get it:")
    lines += [f"  - {way}" for way in how]
    return DataNotFoundError("\n".join(lines))
