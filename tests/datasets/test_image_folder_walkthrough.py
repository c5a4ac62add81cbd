"""docs/datasets.md, "Your own folder of images": folder -> hierot train -> eval -> plot.

The spec below is the one in the docs page (read from it, so the two cannot drift), trained for
a few steps on a small generated flat folder of 40 x 40 images (unlabelled), cropped to 32 x 32.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from hierot.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def docs_spec() -> dict:
    """The YAML block of the walkthrough section of docs/datasets.md."""
    text = DOCS.read_text()
    section = text[text.index("## Your own folder of images"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    return yaml.safe_load(block)


def write_folder(root: Path, n: int = 24) -> None:
    """Discs and squares on a dark ground, 40 x 40 (PNG and JPEG), flat (unlabelled, so the
    evaluation trains no classifier): centre-cropped to 32 x 32."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    root.mkdir()
    for i in range(n):
        image = np.full((40, 40, 3), 20, dtype=np.uint8)
        r, (cx, cy) = rng.integers(6, 12), rng.integers(15, 25, 2)
        inside = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) if i % 3 else (
            (abs(yy - cy) < r) & (abs(xx - cx) < r))
        image[inside] = rng.integers(80, 256, 3)
        Image.fromarray(image).save(root / f"{i:03}.{'png' if i % 2 else 'jpg'}")


def test_a_folder_of_images_trains_evaluates_and_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIEROT_CACHE", str(tmp_path / "cache"))
    write_folder(tmp_path / "my-images")
    spec = docs_spec()
    assert spec["data"]["name"] == "image-folder" and spec["data"]["shape"] == [3, 32, 32]
    assert [layer["latent_shape"] for layer in spec["layers"]] == [  # the paper's SVHN latents
        [1, 16, 16], [2, 8, 8], [4, 4, 4], [2, 4, 4], [1, 4, 4], [2, 2, 2]]
    Path("my-spec.yaml").write_text(yaml.safe_dump(spec))
    steps = ["--set", "train.steps=4", "--set", "train.batch_size=6", "--set", "device=cpu",
             "--set", "data.test_fraction=0.25"]
    assert main(["train", "my-spec.yaml", "--out", "runs/my-images", *steps]) == 0
    assert main(["eval", "runs/my-images", "--samples", "6"]) == 0
    assert main(["plot", "runs/my-images"]) == 0
    out = capsys.readouterr().out
    result = json.loads(Path("runs/my-images/eval.json").read_text())
    assert result["train_points"] == 18 and result["test_points"] == 6  # 24 images, 1/4 held out
    assert "no labels" in result["probe"]["skipped"]  # unlabelled: skipped, and said so
    assert "linear probe skipped" in out and "sample quality: skipped" in out
    figures = {p.name for p in Path("runs/my-images/figures").glob("*.png")}
    assert {"samples.png", "reconstructions.png", "training_curves.png"} <= figures
