"""``digits``: scikit-learn's 1,797 8 x 8 handwritten digits (UCI optdigits), offline and tiny.

Each pixel counts the set pixels in a 4 x 4 block of a 32 x 32 bitmap, so values are 0..16.
Handy for tests and quick experiments; it ships with scikit-learn.
"""

from __future__ import annotations

from pydantic import Field

from hierot.components import DataSplits
from hierot.datasets._common import (
    DIGIT_NAMES,
    Limit,
    as_uint8,
    fixed_split,
    int_labels,
    limit_field,
)
from hierot.registry import ComponentOptions, datasets


class DigitsOptions(ComponentOptions):
    """Options of ``digits``."""

    test_size: int = Field(297, ge=1, le=1297, description="digits held out for the test set")
    limit: Limit = limit_field()

    def train_size(self) -> int:
        n = 1797 - self.test_size
        return n if self.limit is None else min(n, self.limit)

    def sample_shape(self) -> tuple[int, ...]:
        return (1, 8, 8)


@datasets.register("digits", options=DigitsOptions)
def digits(options: DigitsOptions, *, seed: int) -> DataSplits:
    """scikit-learn's 8 x 8 digits (offline, 1,797 images), 1 x 8 x 8 in [0, 1].

    Pixels (0..16) are divided by 16. The split is fixed, the same for every run seed: a
    permutation from ``RandomState(0)`` puts ``test_size`` digits in the test set (by default
    1,500 train / 297 test), and ``limit`` keeps the first ``limit`` training digits.

    Parameters
    ----------
    options:
        ``test_size`` and ``limit``.
    seed:
        Unused: the split does not depend on it.

    Returns
    -------
    DataSplits
        Images ``(n, 1, 8, 8)`` uint8 (``scale`` 16), labels int64 0..9.
    """
    from sklearn.datasets import load_digits  # slow to import; only when asked for

    bunch = load_digits()
    images = bunch.images[:, None]  # (1797, 1, 8, 8) float64, 0..16
    train, test = fixed_split(len(images), options.test_size)
    train = train[: options.limit]
    return DataSplits(
        train_x=as_uint8(images[train]),
        test_x=as_uint8(images[test]),
        train_y=int_labels(bunch.target[train]),
        test_y=int_labels(bunch.target[test]),
        description=f"digits: {len(train)} train / {len(test)} test scikit-learn 8x8 digits, "
        "1x8x8, pixels / 16",
        class_names=DIGIT_NAMES,
        scale=16.0,
    )
