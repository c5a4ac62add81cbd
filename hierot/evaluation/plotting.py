"""Drawing helpers shared by the figures: image mosaics, 2-D views of vectors, saving.

Figures are built with matplotlib's object-oriented API on the Agg canvas (no pyplot, no global
backend state), so they render the same headless, in a notebook or under pytest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

DPI = 120


LINE_STYLES = ("-", "--", "-.", ":")


def curve_styles(n: int) -> list[dict[str, object]]:
    """``n`` line styles, no two alike in both colour and dash pattern (up to 80 curves).

    Colours come from matplotlib's ``tab20`` (the ten ``tab10`` colours first, then their light
    variants) and the dash pattern changes with every curve too, so curves stay apart when two
    colours look alike: in print, to a colour-blind reader, or in a PNG re-saved with a small
    palette.
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    tab20 = colormaps["tab20"]
    assert isinstance(tab20, ListedColormap)  # a qualitative map: a list of 20 colours
    table = cast("list[tuple[float, float, float]]", tab20.colors)  # RGB tuples
    colours = [table[2 * k] for k in range(10)] + [table[2 * k + 1] for k in range(10)]
    return [{"color": colours[i % 20], "ls": LINE_STYLES[(i + i // 20) % len(LINE_STYLES)]}
            for i in range(n)]


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas, constrained layout."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    return path


def is_image(shape: tuple[int, ...]) -> bool:
    """Data of shape ``(C, H, W)`` with C in {1, 3} is drawn as images, anything else as points."""
    return len(shape) == 3 and shape[0] in (1, 3)


class Display:
    """Maps data values to [0, 1] for display: identity for data in [0, 1], else min-max."""

    def __init__(self, reference: Tensor):
        low, high = float(reference.min()), float(reference.max())
        self.low, self.high = (0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high)

    def __call__(self, images: Tensor) -> Tensor:
        return ((images.float() - self.low) / max(self.high - self.low, 1e-12)).clamp(0, 1)


def mosaic(images: Tensor, columns: int, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """``(n, C, H, W)`` images in [0, 1] as one ``(rows*H', columns*W')`` (or ``x3``) array.

    Missing cells (n not a multiple of ``columns``) and the padding are ``fill``.
    """
    n, c, h, w = images.shape
    rows = max(1, math.ceil(n / columns))
    grid = torch.full((c, rows * (h + pad) + pad, columns * (w + pad) + pad), fill)
    for k in range(n):
        r, q = divmod(k, columns)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top:top + h, left:left + w] = images[k]
    array = grid.numpy()
    return array[0] if c == 1 else np.transpose(array, (1, 2, 0))


def show_mosaic(ax, images: Tensor, columns: int, display: Display) -> tuple[int, int]:
    """Draw ``images`` as a grid on ``ax``; returns the cell size (height, width) with padding."""
    grid = mosaic(display(images), columns)
    cmap = "gray" if grid.ndim == 2 else None
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return images.shape[2] + 2, images.shape[3] + 2


def cell_centres(count: int, size: int, pad: int = 2) -> list[float]:
    """Pixel coordinates of the centres of ``count`` mosaic cells of ``size`` (padding included)."""
    return [pad + k * size + (size - pad) / 2 - 0.5 for k in range(count)]


def xy(points: Tensor) -> np.ndarray:
    """The first two coordinates of flattened ``points`` as ``(n, 2)`` (a 0 column for 1-D)."""
    flat = points.detach().cpu().reshape(len(points), -1).double().numpy()
    if flat.shape[1] >= 2:
        return flat[:, :2]
    return np.concatenate([flat, np.zeros_like(flat)], axis=1)


def xy_columns(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` of ``(n, 2)`` points, the positional arguments of ``Axes.scatter``."""
    return points[:, 0], points[:, 1]


def label_axes_xy(ax, what: str, dims: int) -> None:
    ax.set_xlabel(f"{what}[0]")
    ax.set_ylabel(f"{what}[1]" if dims > 1 else "(1-D data: 0)")


def samples_figure(drawn: Tensor, data_shape: tuple[int, ...], reference: Tensor, title: str,
                   path: Path) -> Path:
    """``drawn`` samples saved to ``path``: an image grid (shown like ``reference``, the data) or,
    for vector data, a scatter plot of their first two coordinates."""
    if is_image(data_shape):
        columns = math.ceil(math.sqrt(len(drawn)))
        rows = math.ceil(len(drawn) / columns)
        figure = new_figure(min(12, 0.6 * columns + 1), min(12, 0.6 * rows + 1))
        ax = figure.subplots()
        show_mosaic(ax, drawn, columns, Display(reference))
    else:
        figure = new_figure(6, 6)
        ax = figure.subplots()
        ax.scatter(*xy_columns(xy(drawn)), s=6)
        label_axes_xy(ax, "x", math.prod(data_shape))
    ax.set_title(title)
    return save(figure, path)


def log_or_symlog_scale(ax, values: list[float]) -> None:
    """Log scale when every value is positive, else symmetric log around the smallest value."""
    finite = np.asarray([v for v in values if math.isfinite(v)])
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")
    elif finite.size and (finite != 0).any():
        ax.set_yscale("symlog", linthresh=float(np.abs(finite[finite != 0]).min()))


def cycled_colour(cmap: str, k: int, count: int):
    """Colour ``k`` of ``count`` from a colour map: its own colours in turn while they suffice,
    else evenly spaced along it."""
    from matplotlib import colormaps

    colours = colormaps[cmap]
    return colours(k % colours.N) if count <= colours.N else colours(k / max(count - 1, 1))

__all__ = ["DPI", "LINE_STYLES", "Display", "cell_centres", "curve_styles", "cycled_colour",
           "is_image", "label_axes_xy", "log_or_symlog_scale", "mosaic", "new_figure",
           "samples_figure", "save", "show_mosaic", "xy", "xy_columns"]
