"""Drawing helpers of :mod:`hierot.evaluation.plotting` and the training-curves figure."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from hierot.evaluation.figures import training_curves
from hierot.evaluation.plotting import curve_styles


@pytest.mark.parametrize("n", [1, 6, 10, 13, 20, 21, 80])
def test_no_two_curves_share_colour_and_dash(n):
    styles = [(to_hex(s["color"]), s["ls"]) for s in curve_styles(n)]
    assert len(set(styles)) == n
    # neighbours in the legend differ in both, so a merged colour still leaves the dash
    assert all(a[0] != b[0] and a[1] != b[1] for a, b in pairwise(styles))


def test_the_first_ten_curves_have_ten_colours():
    assert len({to_hex(s["color"]) for s in curve_styles(10)}) == 10


def test_training_curves_are_saved_in_full_colour(tmp_path):
    names = ["rec_x", *(f"rec_z{n}" for n in range(1, 8)), "match_z8"]
    rows = [{"step": s, **{k: 1.0 / (s + i + 1) for i, k in enumerate(names)},
             **{f"w_{k}": 0.5 / (s + i + 1) for i, k in enumerate(names)}, "total": 2.0 / (s + 1)}
            for s in range(1, 20)]
    path = training_curves(rows, tmp_path / "curves.png")
    with Image.open(path) as image:
        assert image.mode in ("RGB", "RGBA")  # no palette
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    # every one of the nine curves' colours is drawn (exactly, somewhere in the plot)
    drawn = {tuple(p) for p in pixels}
    for style in curve_styles(len(names)):
        rgb = tuple(round(255 * c) for c in style["color"])
        assert rgb in drawn, to_hex(style["color"])


def test_training_curves_draw_the_terms_not_the_step_statistics(tmp_path):
    """grad_norm and skipped (train.skip_update's columns) are not objective terms: not drawn."""
    names = ["rec_x", *(f"rec_z{n}" for n in range(1, 8)), "match_z8"]
    rows = [{"step": s, **{k: 1.0 / (s + i + 1) for i, k in enumerate(names)},
             "grad_norm": 3.0 + s, "skipped": 0.0, "total": 2.0 / (s + 1)}
            for s in range(1, 20)]
    path = training_curves(rows, tmp_path / "curves.png")
    with Image.open(path) as image:
        drawn = {tuple(p) for p in np.asarray(image.convert("RGB")).reshape(-1, 3)}
    tenth = tuple(round(255 * c) for c in curve_styles(len(names) + 1)[len(names)]["color"])
    assert tenth not in drawn  # a tenth curve (grad_norm) would take the tenth colour
