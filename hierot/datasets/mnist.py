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
    data_root,
    download_field,
    int_labels,
    limit_field,
    not_found,
    read_idx,
    root_field,
    unit_float,
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

    def sample_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)


def _from_torchvision(
    class_name: str, root: Path, download: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Both splits via ``torchvision.datasets.<class_name>``; ``None`` when not under ``root``."""
    import torchvision.datasets  # slow to import; only when asked for

    cls = getattr(torchvision.datasets, class_name)
    try:
        loaded = {
            split: cls(str(root), train=split == "train", download=download) for split in IDX_FILES
        }
    except (RuntimeError, URLError) as exc:
        if download:
            raise DataNotFoundError(
                f"could not download {cls.__name__} into {root / cls.__name__ / 'raw'}: {exc}"
            ) from exc
        return None  # torchvision's "Dataset not found"
    return {split: (d.data.numpy(), d.targets.numpy()) for split, d in loaded.items()}


def _idx_path(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _from_idx_dir(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Both splits from IDX files (plain or ``.gz``) in ``directory``, or ``None``."""
    paths = {split: [_idx_path(directory, n) for n in names] for split, names in IDX_FILES.items()}
    if any(p is None for pair in paths.values() for p in pair):
        return None
    return {
        split: (read_idx(images), read_idx(labels)) for split, (images, labels) in paths.items()
    }


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
        train_x=unit_float(train_x[:, None]),
        test_x=unit_float(test_x[:, None]),
        train_y=int_labels(train_y),
        test_y=int_labels(test_y),
        description=f"{name}: {len(train_x)} train / {len(test_x)} test, 1x28x28, pixels / 255",
        class_names=class_names,
    )


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

    Reads the decompressed IDX files in ``ROOT/MNIST/raw/`` (downloading them there first when
    ``download`` is true). Pixels are divided by 255; ``limit`` keeps the first ``limit``
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
        Images ``(n, 1, 28, 28)`` float32, labels int64 0..9.

    Raises
    ------
    DataNotFoundError
        The files are not in ``ROOT/MNIST/raw/`` and ``download`` is false, or the download failed.
    """
    root = data_root(options.root)
    arrays = _from_torchvision("MNIST", root, options.download)
    if arrays is None:
        raw = root / "MNIST" / "raw"
        raise not_found("MNIST", [raw], _how("mnist", raw))
    return _splits("mnist", arrays, options.limit)


@datasets.register("fashion-mnist", options=MnistOptions)
def fashion_mnist(options: MnistOptions, *, seed: int) -> DataSplits:
    """Fashion-MNIST: 60,000 train / 10,000 test clothing images, 1 x 28 x 28 in [0, 1].

    Looks, in order, in ``ROOT/FashionMNIST/raw/`` (through torchvision), then in Debian's
    :data:`DEBIAN_FASHION_MNIST` (the gzipped IDX files of ``apt-get install
    dataset-fashion-mnist``, read directly), then downloads into the first place when
    ``download`` is true. Pixels are divided by 255; ``limit`` keeps the first ``limit``
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
        Images ``(n, 1, 28, 28)`` float32, labels int64 0..9.

    Raises
    ------
    DataNotFoundError
        Neither place holds the files and ``download`` is false, or the download failed.
    """
    root = data_root(options.root)
    raw = root / "FashionMNIST" / "raw"
    arrays = _from_torchvision("FashionMNIST", root, download=False)
    if arrays is None:
        arrays = _from_idx_dir(DEBIAN_FASHION_MNIST)
    if arrays is None and options.download:
        arrays = _from_torchvision("FashionMNIST", root, download=True)
    if arrays is None:
        how = _how("fashion-mnist", raw)
        how.append(
            f"or, on Debian and Ubuntu, apt-get install dataset-fashion-mnist "
            f"(installs into {DEBIAN_FASHION_MNIST})"
        )
        raise not_found("Fashion-MNIST", [raw, DEBIAN_FASHION_MNIST], how)
    return _splits("fashion-mnist", arrays, options.limit, FASHION_MNIST_CLASSES)
