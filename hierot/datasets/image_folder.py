"""``image-folder``: a user's folder of images, any format Pillow reads, at a declared shape.

Two layouts: one sub-folder per class (``root/cat/*.png``, ``root/dog/*.jpg``: label ``k`` is the
``k``-th sub-folder in sorted order, its name the class name) or a flat tree without labels
(every image under ``root``). Every image is converted to the declared ``shape`` ``(C, H, W)``:
to 8-bit grey (``C = 1``, Pillow's ``L``) or RGB (``C = 3``), then to ``H x W`` by the ``resize``
rule, and held as uint8 (the model sees ``x / 255``, in [0, 1]). The test set is a fixed random
``test_fraction`` of the images, the same on every run (as for ``mnist-5k``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from hierot.components import DataSplits
from hierot.datasets._cache import Storage, cache_dir_field, hold, storage_field, streams
from hierot.datasets._common import (
    Limit,
    as_uint8,
    fraction_split,
    int_labels,
    limit_field,
)
from hierot.errors import HierotError
from hierot.registry import ComponentOptions, datasets

Channels = Literal[1, 3]
CHUNK = 1024
"""Images decoded at a time when the training set is streamed."""


class ImageFolderOptions(ComponentOptions):
    """Options of ``image-folder``."""

    root: str | None = Field(None, description="the folder of images (required)")
    shape: tuple[Channels, int, int] = Field(
        (3, 32, 32), description="(C, H, W) of every image: C = 1 grey or 3 RGB")
    resize: Literal["none", "stretch", "centre-crop"] = Field(
        "none", description="none: every image must already be H x W; stretch: resize to H x W; "
        "centre-crop: scale the shorter side to fit, then crop the centre")
    labels: Literal["auto", "folders", "none"] = Field(
        "auto", description="folders: one sub-folder per class; none: unlabelled; auto: folders "
        "when root holds only sub-folders")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of the images held out")
    limit: Limit = limit_field()
    storage: Storage = storage_field()
    cache_dir: str | None = cache_dir_field()

    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


@functools.cache
def image_extensions() -> frozenset[str]:
    """File extensions Pillow can open (``.png``, ``.jpg``, ``.bmp``, ``.gif``, ``.tiff``, ...)."""
    from PIL import Image

    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _images_under(folder: Path) -> list[Path]:
    extensions = image_extensions()
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def list_images(root: Path, labels: str) -> tuple[list[Path], np.ndarray | None, tuple | None]:
    """The image files under ``root`` in sorted order, their labels and the class names.

    Raises
    ------
    HierotError
        ``root`` is missing, unreadable or holds no image; with class folders, an image lies
        directly in ``root`` or a class folder is empty.
    """
    if not root.is_dir():
        raise HierotError(f"data.root: {root} is not a folder")
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise HierotError(f"data.root: cannot read {root}: {exc}") from None
    extensions = image_extensions()
    folders = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    top = [e for e in entries if e.is_file() and e.suffix.lower() in extensions]
    if labels == "auto":
        labels = "folders" if folders and not top else "none"
    if labels == "none":
        files = _images_under(root)
        if not files:
            raise HierotError(f"data.root: {root} holds no image file (Pillow's extensions: "
                              ".png, .jpg, .bmp, ...)")
        return files, None, None
    if top:
        raise HierotError(f"data.labels: folders: {top[0]} lies directly in {root}; put every "
                          "image in its class's sub-folder (or set labels: none)")
    if not folders:
        raise HierotError(f"data.root: {root} holds no class sub-folder")
    files, label_list = [], []
    for k, folder in enumerate(folders):
        found = _images_under(folder)
        if not found:
            raise HierotError(f"data.root: the class folder {folder} holds no image file")
        files += found
        label_list += [k] * len(found)
    return files, np.asarray(label_list, dtype=np.int64), tuple(f.name for f in folders)


def read_image(path: Path, shape: tuple[int, int, int], resize: str) -> np.ndarray:
    """One image as uint8 ``(C, H, W)``: converted to ``L`` or ``RGB``, then to ``H x W``."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise HierotError(f"{path}: not a readable image ({exc})") from None
    if image.size != (width, height):
        if resize == "none":
            raise HierotError(
                f"{path}: {image.size[0]}x{image.size[1]} (width x height), not the declared "
                f"{width}x{height}; set data.resize: stretch or centre-crop, or data.shape")
        image = _resized(image, width, height, resize)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _resized(image, width: int, height: int, rule: str):
    from PIL import Image

    if rule == "stretch":
        return image.resize((width, height), Image.Resampling.BILINEAR)
    factor = max(width / image.size[0], height / image.size[1])  # the shorter side fits
    size = (max(width, round(image.size[0] * factor)), max(height, round(image.size[1] * factor)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def read_images(files: list[Path], shape: tuple[int, int, int], resize: str) -> np.ndarray:
    out = np.empty((len(files), *shape), dtype=np.uint8)
    for i, path in enumerate(files):
        out[i] = read_image(path, shape, resize)
    return out


@datasets.register("image-folder", options=ImageFolderOptions)
def image_folder(options: ImageFolderOptions, *, seed: int) -> DataSplits:
    """A folder of images: class sub-folders or unlabelled, uint8 at the declared shape.

    Images are listed in sorted path order; the test set is ``round(test_fraction * n)`` of them
    (at least 1) chosen by a permutation of ``RandomState(0)``, the same on every run; ``limit``
    keeps the first ``limit`` training images. With ``storage: stream`` the training images are
    decoded in chunks into the streaming cache (:mod:`hierot.datasets._cache`).

    Parameters
    ----------
    options:
        ``root``, ``shape``, ``resize``, ``labels``, ``test_fraction``, ``limit``, ``storage``
        and ``cache_dir``.
    seed:
        Unused: the split does not depend on it.

    Returns
    -------
    DataSplits
        Images ``(n, C, H, W)`` uint8 (``scale`` 255); labels int64 (class folders) or ``None``.

    Raises
    ------
    HierotError
        The folder is missing, unreadable or empty; a file is not a readable image, or is not
        ``H x W`` while ``resize`` is ``none`` (in memory, the first such file in path order is
        named; streamed, the first met: the test images, then the training images).
    """
    if options.root is None:
        raise HierotError("data.root: required: the folder of images")
    root = Path(options.root).expanduser()
    files, labels, class_names = list_images(root, options.labels)
    train, test = fraction_split(len(files), options.test_fraction, options.limit,
                                 ("image", "images"))
    train_files = [files[i] for i in train]
    shape: tuple[int, int, int] = options.shape

    def chunks():
        for start in range(0, len(train_files), CHUNK):
            yield read_images(train_files[start:start + CHUNK], shape, options.resize)

    if streams(options.storage, len(train) * int(np.prod(shape))):
        test_x = as_uint8(read_images([files[i] for i in test], shape, options.resize))
        train_x = hold("image-folder", options, files, (len(train), *shape), np.uint8, chunks)
    else:  # decoded in path order: of several bad files, the first is named
        needed = np.sort(np.concatenate([train, test]))
        every = read_images([files[i] for i in needed], shape, options.resize)
        train_x = as_uint8(every[np.searchsorted(needed, train)])
        test_x = as_uint8(every[np.searchsorted(needed, test)])
    kind = f"{len(class_names)} classes" if class_names else "unlabelled"
    return DataSplits(
        train_x=train_x,
        test_x=test_x,
        train_y=None if labels is None else int_labels(labels[train]),
        test_y=None if labels is None else int_labels(labels[test]),
        description=f"image-folder {root}: {len(train_files)} train / {len(test)} test, "
        f"{'x'.join(map(str, shape))}, {kind}, pixels / 255",
        class_names=class_names,
        scale=255.0,
    )

