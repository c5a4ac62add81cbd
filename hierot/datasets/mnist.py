"""``mnist`` and ``fashion-mnist``: the full 60,000 / 10,000 splits, through torchvision.

MNIST (LeCun et al., 1998) is the data set of the paper's Section 3.1; Fashion-MNIST (Xiao et
al., 2017) has the same format (IDX files, 28 x 28 grey images, labels 0..9). Files are read
from ``ROOT/MNIST/raw/`` and ``ROOT/FashionMNIST/raw/`` (torchvision's layout, decompressed IDX
files); Fashion-MNIST is also read from Debian's ``dataset-fashion-mnist`` package.
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import numpy as np

from hierot.components import DataSplits
from hierot.datasets._common import (
    DATA_ENV,
    DIGIT_NAMES,
    Limit,
    as_uint8,
    data_root,
    download_field,
    int_labels,
    limit_field,
    not_found,
    read_idx,
    root_field,
)
from hierot.errors import DataNotFoundError, HierotError
from hierot.registry import ComponentOptions, datasets

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts the gzipped IDX files."""
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""File names of both splits, identical for MNIST and Fashion-MNIST."""


class MnistOptions(ComponentOptions):
    """Options of ``mnist`` and ``fashion-mnist``."""

    root: str | None = root_field()
    download: bool = download_field()
    limit: Limit = limit_field()

    def train_size(self) -> int:
        return 60_000 if self.limit is None else min(60_000, self.limit)

    def sample_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)


def _download(class_name: str, root: Path) -> None:
    """Fetch both splits into ``root/<class_name>/raw`` with ``torchvision.datasets``."""
    import torchvision.datasets  # slow to import; only when asked for

    cls = getattr(torchvision.datasets, class_name)
    try:
        for split in IDX_FILES:
            cls(str(root), train=split == "train", download=True)
    except (RuntimeError, URLError, OSError) as exc:
        raise DataNotFoundError(
            f"could not download {cls.__name__} into {root / cls.__name__ / 'raw'}: {exc}"
        ) from exc


def _idx_path(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _from_idx_dir(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Both splits from IDX files (plain or ``.gz``) in ``directory``, or ``None`` when a file
    is missing. A file that is there but truncated or corrupt is an error naming it."""
    found = {split: [_idx_path(directory, n) for n in names] for split, names in IDX_FILES.items()}
    paths = {split: [p for p in pair if p is not None] for split, pair in found.items()}
    if any(len(paths[split]) < len(pair) for split, pair in found.items()):
        return None
    arrays = {}
    for split, (image_file, label_file) in paths.items():
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise HierotError(f"{image_file}: expected images (n, 28, 28), got {images.shape}")
        if labels.shape != images.shape[:1]:
            raise HierotError(
                f"{label_file}: expected {len(images)} labels (n,) for the images of "
                f"{image_file.name}, got shape {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise HierotError(f"{label_file}: labels must be 0..9, "
                              f"found {labels.min()}..{labels.max()}")
        arrays[split] = (images, labels)
    return arrays


FASHION_MNIST_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")
"""Fashion-MNIST's class names, label 0 to 9 (Xiao et al., 2017)."""


def _splits(
    name: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]], limit: int | None,
    class_names: tuple[str, ...] = DIGIT_NAMES,
) -> DataSplits:
    for split, (images, labels) in arrays.items():
        if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise HierotError(
                f"{name} {split}: expected images (n, 28, 28) and labels (n,), got "
                f"{images.shape} and {labels.shape}"
            )
    (train_x, train_y), (test_x, test_y) = arrays["train"], arrays["test"]
    train_x, train_y = train_x[:limit], train_y[:limit]
    return DataSplits(
        train_x=as_uint8(train_x[:, None]),
        test_x=as_uint8(test_x[:, None]),
        train_y=int_labels(train_y),
        test_y=int_labels(test_y),
        description=f"{name}: {len(train_x)} train / {len(test_x)} test, 1x28x28, pixels / 255",
        class_names=class_names,
        scale=255.0,
    )


def _what(name: str, raw: Path) -> str:
    """``MNIST``, or which of its files are missing when the others are there."""
    names = IDX_FILES["train"] + IDX_FILES["test"]
    missing = [n for n in names if _idx_path(raw, n) is None]
    if len(missing) == len(names):
        return name
    return f"{name} file{'s' if len(missing) > 1 else ''} {', '.join(missing)} (or .gz)"


def _how(name: str, raw: Path) -> list[str]:
    files = IDX_FILES["train"] + IDX_FILES["test"]
    return [
        f"set download: true (data: {{name: {name}, download: true}}) to fetch it into {raw}",
        f"or put the decompressed files {', '.join(files)} in {raw}",
        f"or point root (or ${DATA_ENV}) at a directory holding {raw.parent.name}/raw/",
    ]


@datasets.register("mnist", options=MnistOptions)
def mnist(options: MnistOptions, *, seed: int) -> DataSplits:
    """MNIST through torchvision: 60,000 train / 10,000 test digits, 1 x 28 x 28 in [0, 1].

    Reads the IDX files (plain or ``.gz``) in ``ROOT/MNIST/raw/`` (downloading them there
    first, through torchvision, when they are missing and ``download`` is true); a truncated or
    corrupt file is an error naming it and the sizes expected and found. Pixels are divided by
    255; ``limit`` keeps the first ``limit``
    training images in file order.

    Parameters
    ----------
    options:
        ``root``, ``download`` and ``limit``.
    seed:
        Unused: the split is the official one.

    Returns
    -------
    DataSplits
        Images ``(n, 1, 28, 28)`` uint8 (``scale`` 255), labels int64 0..9.

    Raises
    ------
    DataNotFoundError
        The files are not in ``ROOT/MNIST/raw/`` and ``download`` is false, or the download failed.
    """
    root = data_root(options.root)
    raw = root / "MNIST" / "raw"
    arrays = _from_idx_dir(raw)
    if arrays is None and options.download:
        _download("MNIST", root)
        arrays = _from_idx_dir(raw)
    if arrays is None:
        raise not_found(_what("MNIST", raw), [raw], _how("mnist", raw))
    return _splits("mnist", arrays, options.limit)


@datasets.register("fashion-mnist", options=MnistOptions)
def fashion_mnist(options: MnistOptions, *, seed: int) -> DataSplits:
    """Fashion-MNIST: 60,000 train / 10,000 test clothing images, 1 x 28 x 28 in [0, 1].

    Looks, in order, in ``ROOT/FashionMNIST/raw/``, then (only when ``root`` is not given) in
    Debian's :data:`DEBIAN_FASHION_MNIST` (the gzipped IDX files of ``apt-get install
    dataset-fashion-mnist``), then downloads into the first place when ``download`` is true.
    Files that are there but truncated or corrupt are an error naming the file, never skipped.
    Pixels are divided by 255; ``limit`` keeps the first ``limit``
    training images in file order. Labels: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress,
    4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.

    Parameters
    ----------
    options:
        ``root``, ``download`` and ``limit``.
    seed:
        Unused: the split is the official one.

    Returns
    -------
    DataSplits
        Images ``(n, 1, 28, 28)`` uint8 (``scale`` 255), labels int64 0..9.

    Raises
    ------
    DataNotFoundError
        Neither place holds the files and ``download`` is false, or the download failed.
    """
    root = data_root(options.root)
    raw = root / "FashionMNIST" / "raw"
    places = [raw] if options.root is not None else [raw, DEBIAN_FASHION_MNIST]
    arrays = None
    for place in places:  # an explicit root is used or refused, never replaced
        arrays = _from_idx_dir(place)
        if arrays is not None:
            break
    if arrays is None and options.download:
        _download("FashionMNIST", root)
        arrays = _from_idx_dir(raw)
    if arrays is None:
        how = _how("fashion-mnist", raw)
        if options.root is None:
            how.append(
                f"or, on Debian and Ubuntu, apt-get install dataset-fashion-mnist "
                f"(installs into {DEBIAN_FASHION_MNIST})"
            )
        else:
            how.append(f"or leave root unset to also look in {DEBIAN_FASHION_MNIST} (Debian)")
        raise not_found(_what("Fashion-MNIST", raw), places, how)
    return _splits("fashion-mnist", arrays, options.limit, FASHION_MNIST_CLASSES)
