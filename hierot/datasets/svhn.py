"""``svhn``: Street View House Numbers (Netzer et al., 2011), cropped 32 x 32 digits.

The files are torchvision's (``train_32x32.mat``, ``extra_32x32.mat``, ``test_32x32.mat``: 73,257,
531,131 and 26,032 images), in ``ROOT/SVHN/``. Each is a MATLAB v5 file with ``X`` of shape
(32, 32, 3, N), uint8 RGB, and ``y`` of shape (N, 1) holding 1..10, where 10 means the digit 0.

Present files are read here with :func:`scipy.io.loadmat`, as torchvision does, but without
torchvision's MD5 check of the whole file on every load (seconds for ``extra``); downloads go
through :func:`torchvision.datasets.utils.download_url`, which does check the MD5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.error import URLError

import numpy as np
import torch
from pydantic import Field, model_validator

from hierot.components import DataSplits
from hierot.datasets._common import (
    DATA_ENV,
    DIGIT_NAMES,
    Limit,
    data_root,
    download_field,
    limit_field,
    not_found,
    root_field,
)
from hierot.errors import DataNotFoundError, HierotError
from hierot.registry import ComponentOptions, datasets

Split = Literal["train", "extra", "test"]


class SvhnOptions(ComponentOptions):
    """Options of ``svhn``."""

    splits: tuple[Split, ...] = Field(
        ("train", "extra"), min_length=1, description="files concatenated into the training set"
    )
    test_splits: tuple[Split, ...] = Field(
        ("test",), min_length=1, description="files concatenated into the test set"
    )
    root: str | None = root_field()
    download: bool = download_field()
    limit: Limit = limit_field()

    @model_validator(mode="after")
    def _disjoint(self) -> SvhnOptions:
        named = list(self.splits) + list(self.test_splits)
        if len(set(named)) != len(named):
            raise ValueError(
                f"splits {list(self.splits)} and test_splits {list(self.test_splits)} must not "
                "repeat a file (a test image would also be a training image)"
            )
        return self

    def sample_shape(self) -> tuple[int, ...]:
        return (3, 32, 32)


def read_svhn(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN ``.mat`` file as images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` 0..9.

    ``X`` (32, 32, 3, N) is transposed to (N, 3, 32, 32) (a view, no copy), and label 10 becomes 0,
    as torchvision does.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except (ValueError, OSError, NotImplementedError, MatReadError, EOFError) as exc:
        raise HierotError(f"{path}: not a readable MATLAB v5 file: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise HierotError(f"{path}: expected variables X and y in the .mat file")
    images, labels = mat["X"], mat["y"].astype(np.int64).reshape(-1)
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[:3] != (32, 32, 3)
        or images.shape[3] != len(labels)
    ):
        raise HierotError(
            f"{path}: expected X uint8 (32, 32, 3, N) and y (N, 1), got X {images.dtype} "
            f"{images.shape} and y {mat['y'].shape}"
        )
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise HierotError(f"{path}: labels must be 1..10 (10 for the digit 0)")
    labels[labels == 10] = 0
    return images.transpose(3, 2, 0, 1), labels


def _files(directory: Path, splits: tuple[str, ...], download: bool) -> dict[str, Path]:
    """The file of each split, downloading missing ones when asked; all must exist."""
    from torchvision.datasets import SVHN  # slow to import; only when asked for
    from torchvision.datasets.utils import download_url

    paths = {s: directory / SVHN.split_list[s][1] for s in splits}
    missing = [(s, p) for s, p in paths.items() if not p.is_file()]
    if missing and download:
        for split, path in missing:
            url, filename, md5 = SVHN.split_list[split]
            try:
                download_url(url, str(directory), filename, md5)
            except (RuntimeError, URLError, OSError) as exc:
                raise DataNotFoundError(
                    f"could not download {url} into {directory}: {exc}"
                ) from exc
    elif missing:
        names = ", ".join(p.name for _, p in missing)
        raise not_found(
            f"SVHN ({names})",
            [p for _, p in missing],
            [
                "set download: true (data: {name: svhn, download: true}) to fetch them",
                f"or put the files from http://ufldl.stanford.edu/housenumbers/ in {directory}",
                f"or point root (or ${DATA_ENV}) at a directory holding SVHN/",
            ],
        )
    return paths


def _concatenate(paths: list[Path], limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 and labels of the files in order, at most ``limit`` of them."""
    parts, have = [], 0
    for path in paths:
        if limit is not None and have >= limit:
            break  # the files before already hold the first `limit` images
        parts.append(read_svhn(path))
        have += len(parts[-1][1])
    n = have if limit is None else min(limit, have)
    images = torch.empty((n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    start = 0
    for x, y in parts:
        take = min(len(y), n - start)
        images[start : start + take] = torch.from_numpy(x[:take])  # the strided view, copied
        labels[start : start + take] = torch.from_numpy(y[:take])
        start += take
    return images, labels


@datasets.register("svhn", options=SvhnOptions)
def svhn(options: SvhnOptions, *, seed: int) -> DataSplits:
    """SVHN house-number digits, 3 x 32 x 32 RGB in [0, 1]; trains on train + extra by default.

    The ``splits`` files are concatenated, in the order given, into the training set and the
    ``test_splits`` files into the test set. Pixels (uint8 RGB) are divided by 255, with no
    per-channel normalisation. ``limit`` keeps the first ``limit`` training images (files after
    those that supply them are not read). Label 10 of the files (the digit 0) becomes 0.

    The default training set is 604,388 images: 1.9 GB held as uint8 (7.4 GB as float32); each
    batch is divided by 255 inside the training step (``DataSplits.scale``).

    Parameters
    ----------
    options:
        ``splits``, ``test_splits``, ``root``, ``download`` and ``limit``.
    seed:
        Unused: the splits are the official files.

    Returns
    -------
    DataSplits
        Images ``(n, 3, 32, 32)`` uint8 (``scale`` 255), labels int64 0..9.

    Raises
    ------
    DataNotFoundError
        A file is not in ``ROOT/SVHN/`` and ``download`` is false, or the download failed.
    """
    directory = data_root(options.root) / "SVHN"
    files = _files(directory, options.splits + options.test_splits, options.download)
    train_x, train_y = _concatenate([files[s] for s in options.splits], options.limit)
    test_x, test_y = _concatenate([files[s] for s in options.test_splits], None)
    return DataSplits(
        train_x=train_x,
        test_x=test_x,
        train_y=train_y,
        test_y=test_y,
        description=f"svhn: {len(train_x)} train ({'+'.join(options.splits)}) / {len(test_x)} test "
        f"({'+'.join(options.test_splits)}), 3x32x32 RGB, pixels / 255",
        class_names=DIGIT_NAMES,
        scale=255.0,
    )
