"""``image-folder``: layouts, formats, shapes, the split rule and every bad input it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hierot.cli import main
from hierot.errors import HierotError
from hierot.registry import datasets


def load(**options):
    return datasets.build(datasets.tagged_options("image-folder")(name="image-folder", **options),
                          seed=0)


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def classes_tree(root: Path, per_class: int = 6, size=(8, 8)) -> dict[Path, np.ndarray]:
    """PNGs (lossless) in two class folders; each image's pixels by path."""
    rng = np.random.default_rng(0)
    written = {}
    for name in ("cats", "dogs"):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            written[save(root / name / f"{i:02}.png", pixels)] = pixels
    return written


def test_class_folders_give_labels_names_and_exact_pixels(tmp_path):
    written = classes_tree(tmp_path)
    data = load(root=str(tmp_path), shape=(3, 8, 8), test_fraction=0.25)
    assert data.class_names == ("cats", "dogs") and data.scale == 255.0
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (9, 3, 8, 8)
    assert data.test_x.shape == (3, 3, 8, 8) and len(data.train_y) == 9 and len(data.test_y) == 3
    by_pixels = {pixels.transpose(2, 0, 1).tobytes(): path for path, pixels in written.items()}
    seen = set()
    for x, y in zip(torch.cat([data.train_x, data.test_x]), torch.cat([data.train_y, data.test_y])):
        path = by_pixels[x.numpy().tobytes()]  # every image read back bit for bit
        assert data.class_names[int(y)] == path.parent.name
        seen.add(path)
    assert len(seen) == 12  # train and test are disjoint and cover the folder


def test_flat_folder_is_unlabelled_and_reads_any_pillow_format(tmp_path):
    rng = np.random.default_rng(1)
    for i, ext in enumerate(("png", "jpg", "bmp", "gif", "tiff", "webp")):
        folder = tmp_path / "nested" if i % 2 else tmp_path  # images at the top: unlabelled
        save(folder / f"{i}.{ext}", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image: skipped")
    data = load(root=str(tmp_path), shape=(1, 8, 8), test_fraction=0.2)
    assert data.train_y is None and data.test_y is None and data.class_names is None
    assert data.train_x.shape == (5, 1, 8, 8) and data.test_x.shape == (1, 1, 8, 8)


def test_resize_rules_reach_the_declared_shape(tmp_path):
    tall = np.zeros((40, 20, 3), dtype=np.uint8)
    tall[6:34] = 255  # a white centre band: the centre crop is all white
    save(tmp_path / "a.png", tall)
    save(tmp_path / "b.png", np.full((12, 30, 3), 255, dtype=np.uint8))
    crop = load(root=str(tmp_path), shape=(3, 10, 10), resize="centre-crop", test_fraction=0.5)
    both = torch.cat([crop.train_x, crop.test_x])
    assert both.shape == (2, 3, 10, 10) and (both == 255).all()
    stretch = load(root=str(tmp_path), shape=(3, 10, 10), resize="stretch", test_fraction=0.5)
    tall_row = torch.cat([stretch.train_x, stretch.test_x]).float().mean(dim=(1, 2, 3))
    assert tall_row.min() < 255  # the black ends survive a stretch, not a centre crop


def test_split_is_fixed_whatever_the_run_seed(tmp_path):
    classes_tree(tmp_path, per_class=10)
    options = datasets.tagged_options("image-folder")(name="image-folder", root=str(tmp_path),
                                                      shape=(3, 8, 8), test_fraction=0.3)
    a, b = datasets.build(options, seed=0), datasets.build(options, seed=5)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    assert len(a.test_x) == 6 and set(a.test_y.tolist()) == {0, 1}
    assert len(load(root=str(tmp_path), shape=(3, 8, 8), limit=4).train_x) == 4


BAD = [
    ("missing", "is not a folder"),
    ("empty", "holds no image file"),
    ("corrupt", "cats/05.png: not a readable image"),  # the first of two, in path order
    ("mixed sizes", "05.png: 9x9 (width x height), not the declared 8x8"),
    ("image beside class folders", "stray.png lies directly in"),
    ("empty class folder", "class folder"),
]


@pytest.mark.parametrize(("case", "message"), BAD)
def test_bad_folders_are_named_and_exit_2_writing_nothing(tmp_path, capsys, case, message):
    root = tmp_path / "images"
    if case != "missing":
        root.mkdir()
    if case in ("corrupt", "mixed sizes", "image beside class folders", "empty class folder"):
        classes_tree(root)
    if case == "corrupt":
        (root / "dogs" / "02.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
        (root / "cats" / "05.png").write_bytes(b"")
    elif case == "mixed sizes":
        save(root / "dogs" / "05.png", np.zeros((9, 9, 3), dtype=np.uint8))
    elif case == "image beside class folders":
        save(root / "stray.png", np.zeros((8, 8, 3), dtype=np.uint8))
    elif case == "empty class folder":
        (root / "zebras").mkdir()
    labels = "folders" if case == "image beside class folders" else "auto"
    with pytest.raises(HierotError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(root=str(root), shape=(3, 8, 8), labels=labels)
    spec = {"data": {"name": "image-folder", "root": str(root), "shape": [3, 8, 8],
                     "labels": labels},
            "layers": [{"latent_shape": [2], "encoder": {"name": "mlp"},
                        "decoder": {"name": "mlp"}}],
            "train": {"batch_size": 4, "steps": 1, "progress": False}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "spec.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message.split(":")[0].split(" ")[0] in err
    assert not out.exists()


def test_shape_is_checked_against_the_layers_before_loading(tmp_path, capsys):
    spec = {"data": {"name": "image-folder", "root": str(tmp_path / "none"),
                     "shape": [3, 32, 32]},
            "layers": [{"latent_shape": [4, 4, 4],
                        "encoder": {"name": "resnet", "filters": 8, "resample": "none"},
                        "decoder": {"name": "resnet", "filters": 8, "resample": "none"}}],
            "train": {"steps": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["validate", str(tmp_path / "spec.yaml")]) == 2
    assert "layers.0.encoder: cannot map data (3, 32, 32)" in capsys.readouterr().err
