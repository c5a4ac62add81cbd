"""The paper's figures for any run: ``RUN/figures/*.png``.

============================ ================================================================
file                         what (paper figure)
============================ ================================================================
``training_curves.png``      every term of the objective through training, unweighted and
                             weighted (Figure 2a)
``samples.png``              samples of the generative model (Figures 2b, 5a)
``top_latent.png``           decodes of a grid over the top latent, ±2 std (Figure 2c)
``embeddings.png``           held-out data encoded at every latent layer, coloured by label
                             (Figures 3a, 5c)
``reconstructions.png``      reconstructions from every encoding depth, data at the bottom
                             (Figures 3b, 5d)
``interpolations.png``       interpolations through the top latent between pairs of data
                             points, the data in the first and last columns (Figure 5b)
``per_layer_quality.png``    fidelity and coverage of held-out data regenerated from each
                             depth, from ``eval.json`` (the quantitative Figure 3b; drawn when
                             ``hierot eval`` has measured it)
============================ ================================================================

Image data ``(C, H, W)`` with C in {1, 3} is drawn as images; any other data (vectors) as scatter
plots of its first two coordinates. Codes are the encoders' means and decodes the decoders' means
(:meth:`hierot.model.Hierarchy.decode`); samples are ancestral, from the prior.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hierot.evaluation.plotting import (
    Display,
    cell_centres,
    curve_styles,
    cycled_colour,
    is_image,
    label_axes_xy,
    log_or_symlog_scale,
    new_figure,
    save,
    show_mosaic,
    xy,
    xy_columns,
)
from hierot.evaluation.trained import LoadedRun, decode, encode, generate, load_run, subset

CAPTIONS = {
    "training_curves.png": "Training curves: every term of the objective, unweighted and "
                           "weighted (Figure 2a).",
    "samples.png": "Samples of the generative model (Figure 2b).",
    "top_latent.png": "Decodes of points evenly spaced over ±2 standard deviations of the top "
                      "latent (Figure 2c).",
    "embeddings.png": "Held-out data encoded at every latent layer, coloured by label "
                      "(Figure 3a).",
    "reconstructions.png": "Reconstructions from every encoding depth; the bottom row is data "
                           "(Figure 3b).",
    "interpolations.png": "Interpolations through the top latent; data in the first and last "
                          "columns (Figure 5b).",
    "per_layer_quality.png": "Fidelity and coverage of held-out data regenerated from each "
                             "depth, with 95 % intervals (the quantitative Figure 3b).",
}
"""File name -> caption, in the order the report shows them."""

DATA_COLOUR, MODEL_COLOUR = "0.75", "tab:blue"


def plot_run(
    path: str | Path | LoadedRun, checkpoint: int | str | None = None, *, device: str | None = None,
    embedding: str = "pca", seed: int = 0,
) -> list[Path]:
    """Draw every figure of a run into ``RUN/figures``.

    Parameters
    ----------
    path:
        A run directory (or a loaded run).
    checkpoint:
        The checkpoint step (default: the last; ``"best"``: ``best.pt``).
    device:
        Device to run the model on (default: the spec's).
    embedding:
        ``"pca"`` (fast) or ``"umap"`` (the paper's; its first use in a process compiles UMAP's
        numba code, about half a minute): how latent layers of more than two dimensions are
        projected.
    seed:
        Seeds the choice of data points and the samples.

    Returns
    -------
    list of Path
        The files written, in the order of :data:`CAPTIONS`.
    """
    run = path if isinstance(path, LoadedRun) else load_run(path, checkpoint, device=device)
    out = run.run_dir.figures_dir
    written = [
        training_curves(run.run_dir.read_metrics(), out / "training_curves.png"),
        samples(run, out / "samples.png", seed=seed),
        top_latent(run, out / "top_latent.png"),
        embeddings(run, out / "embeddings.png", method=embedding, seed=seed),
        reconstructions(run, out / "reconstructions.png", seed=seed),
        interpolations(run, out / "interpolations.png", seed=seed),
    ]
    evaluated = run.run_dir.eval_file
    if evaluated.is_file():
        import json

        from hierot.evaluation._per_layer import figure

        block = json.loads(evaluated.read_text()).get("sample_quality", {}).get("per_layer")
        if block:
            written.append(figure(block, out / "per_layer_quality.png"))
    return written


# -- Figure 2a -----------------------------------------------------------------------------------
def training_curves(rows: list[dict[str, float]], path: Path) -> Path:
    """Every term logged in ``metrics.csv`` against the step, unweighted and weighted.

    Each panel's legend sits below it, in columns, so that it covers none of the curves.
    """
    figure = new_figure(12, 5.5)
    left, right = figure.subplots(1, 2)
    if not rows:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", transform=ax.transAxes)
        return save(figure, path)
    steps = [r["step"] for r in rows]
    skip = {"step", "epoch", "wall_time", "total", "lr", "step_time", "grad_norm", "skipped"}
    names = [k for k in rows[-1] if k not in skip and not k.startswith(("w_", "val_"))]
    for ax, keys, title in (
        (left, names, "unweighted terms"),
        (right, [f"w_{n}" for n in names if f"w_{n}" in rows[-1]] + ["total"],
         "weighted terms and total"),
    ):
        values = []
        terms = [k for k in keys if k != "total"]
        for key, style in zip(terms, curve_styles(len(terms))):
            series = [r.get(key, float("nan")) for r in rows]
            values += series
            ax.plot(steps, series, label=key, lw=1.5, **style)
        if "total" in keys:
            series = [r.get("total", float("nan")) for r in rows]
            values += series
            ax.plot(steps, series, label="total", lw=2.0, color="black", ls=(0, (8, 3)))
        log_or_symlog_scale(ax, values)
        ax.set_xlabel("training step")
        ax.set_ylabel("value (mean over the logging interval)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14),
                  ncols=min(4, len(keys)), frameon=False)
    figure.suptitle("Training curves (Figure 2a)")
    return save(figure, path)


# -- Figure 2b -----------------------------------------------------------------------------------
def samples(run: LoadedRun, path: Path, *, n: int = 100, seed: int = 0) -> Path:
    """A grid of ``n`` model samples (images), or samples over the data (vectors)."""
    shape = run.model.data_shape
    if is_image(shape):
        columns = math.ceil(math.sqrt(n))
        figure = new_figure(7, 7)
        ax = figure.subplots()
        show_mosaic(ax, generate(run.model, n, seed=seed), columns, Display(run.data.test_x))
        ax.set_title(f"Samples of the model ({n}, ancestral from the prior)")
        return save(figure, path)
    drawn = generate(run.model, 1000, seed=seed)
    figure = new_figure(6, 6)
    ax = figure.subplots()
    data = xy(run.data.test_x[subset(len(run.data.test_x), 1000, seed)])
    ax.scatter(*xy_columns(data), s=6, c=DATA_COLOUR, label="held-out data")
    ax.scatter(*xy_columns(xy(drawn)), s=6, c=MODEL_COLOUR, alpha=0.7, label="model samples")
    label_axes_xy(ax, "x", math.prod(shape))
    ax.set_title("Model samples and held-out data (first two coordinates)")
    ax.legend()
    return save(figure, path)


# -- Figure 2c -----------------------------------------------------------------------------------
def top_grid(run: LoadedRun, steps: int) -> tuple[Tensor, list[str], np.ndarray]:
    """Points of the top latent to decode, ``(rows * columns, *shape)``, with axis names.

    A 1- or 2-D top latent: a grid over ±2 prior standard deviations around the origin (one row
    for 1-D). A wider one: the encoded test data's mean ± 2 standard deviations along its two
    leading principal directions. Rows go from +2 (top) to -2, columns from -2 to +2.
    """
    shape = run.model.latent_shapes[-1]
    dim, top = math.prod(shape), f"z{run.depth}"
    grid = np.linspace(-2.0, 2.0, steps)
    a, b = np.meshgrid(grid, grid[::-1])  # a: columns, b: rows (top = +2)
    if dim == 1:
        points = torch.tensor(grid, dtype=torch.float32).reshape(steps, *shape)
        return points, [f"{top}[0]", ""], grid
    if dim == 2:
        plane = np.stack([a.ravel(), b.ravel()], 1)
        points = torch.tensor(plane, dtype=torch.float32).reshape(-1, *shape)
        return points, [f"{top}[0]", f"{top}[1]"], grid
    codes = encode(run.objective, run.data.test_x, device=run.device)[-1].flatten(1).double()
    centre = codes.mean(0)
    values, vectors = torch.linalg.eigh(torch.cov(codes.T))
    order = values.argsort(descending=True)[:2]
    std, directions = values[order].clamp_min(0).sqrt(), vectors[:, order]
    share = (values[order] / values.clamp_min(0).sum().clamp_min(1e-12)).tolist()
    offsets = torch.tensor(np.stack([a.ravel(), b.ravel()], 1)) * std
    points = centre + offsets @ directions.T
    names = [f"PC{k + 1} of {top} ({100 * s:.0f}% of variance, std {float(sd):.2g})"
             for k, (s, sd) in enumerate(zip(share, std))]
    return points.float().reshape(-1, *shape), names, grid


def top_latent(run: LoadedRun, path: Path, *, steps: int = 11) -> Path:
    """Decodes of a grid over the top latent z_N (Figure 2c)."""
    depth, model = run.depth, run.model
    points, names, grid = top_grid(run, steps)
    decoded = decode(model, points, depth, device=run.device)
    rows = len(points) // steps
    dim = math.prod(model.latent_shapes[-1])
    where = "" if dim <= 2 else " along the leading principal directions of the encoded test data"
    title = f"Decodes of z{depth} ({dim}-D) over ±2 std{where}"
    ticks = [f"{v:+.1f}" for v in grid]
    if is_image(model.data_shape):
        figure = new_figure(8, 8 * rows / steps + 0.8)
        ax = figure.subplots()
        h, w = show_mosaic(ax, decoded, steps, Display(run.data.test_x))
        ax.set_xticks(cell_centres(steps, w), ticks, fontsize="small")
        ax.set_xlabel(names[0])
        if rows > 1:
            ax.set_yticks(cell_centres(rows, h), ticks[::-1], fontsize="small")
            ax.set_ylabel(names[1])
        ax.set_title(title)
        return save(figure, path)
    figure = new_figure(6.5, 6)
    ax = figure.subplots()
    data = xy(run.data.test_x[subset(len(run.data.test_x), 1000)])
    ax.scatter(*xy_columns(data), s=6, c=DATA_COLOUR, label="held-out data")
    mesh = xy(decoded).reshape(rows, steps, 2)
    for r in range(rows):
        ax.plot(*mesh[r].T, c="tab:blue", lw=1, label="decoded grid rows" if r == 0 else None)
    if rows > 1:
        for c in range(steps):
            label = "decoded grid columns" if c == 0 else None
            ax.plot(*mesh[:, c].T, c="tab:orange", lw=1, label=label)
    ax.scatter(*xy_columns(mesh.reshape(-1, 2)), s=8, c="k", zorder=3)
    label_axes_xy(ax, "x", math.prod(model.data_shape))
    ax.set_title(title + "\n(first two data coordinates)", fontsize="medium")
    ax.legend(fontsize="small")
    return save(figure, path)


# -- Figure 3a -----------------------------------------------------------------------------------
def project(codes: Tensor, method: str, seed: int) -> tuple[np.ndarray, str]:
    """``(n, 2)`` coordinates of ``codes`` and how they were obtained."""
    flat = codes.flatten(1).double().numpy()
    dim = flat.shape[1]
    if dim == 1:
        jitter = np.random.default_rng(seed).uniform(-1, 1, len(flat))
        return np.stack([flat[:, 0], jitter], 1), "1-D, jittered"
    if dim == 2:
        return flat, "2-D"
    if method == "umap":
        try:
            import umap
        except ImportError:
            method = "pca"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
                return reducer.fit_transform(flat), f"{dim}-D, UMAP"
    centred = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, f"{dim}-D, PCA"


def embeddings(
    run: LoadedRun, path: Path, *, method: str = "pca", max_points: int = 2000, seed: int = 0
) -> Path:
    """Every latent layer of up to ``max_points`` test points, coloured by label (Figure 3a)."""
    rows = subset(len(run.data.test_x), max_points, seed)
    codes = encode(run.objective, run.data.test_x[rows], device=run.device)
    labels = None if run.data.test_y is None else run.data.test_y[rows].numpy()
    n = len(codes)
    columns = min(n, 3)
    lines = math.ceil(n / columns)
    figure = new_figure(3.6 * columns + 1.2, 3.6 * lines + 0.6)
    axes = np.atleast_1d(figure.subplots(lines, columns, squeeze=False)).ravel()
    classes = [] if labels is None else sorted(set(labels.tolist()))
    cmap = "tab10" if len(classes) <= 10 else "tab20"
    colours = {c: cycled_colour(cmap, k, len(classes)) for k, c in enumerate(classes)}
    for i, (ax, z) in enumerate(zip(axes, codes)):
        points, how = project(z, method, seed)
        if labels is None:
            ax.scatter(*xy_columns(points), s=3, c=MODEL_COLOUR)
        else:
            ax.scatter(*xy_columns(points), s=3, c=[colours[c] for c in labels.tolist()])
        ax.set_title(f"z{i + 1} ({how})")
        ax.set_xlabel("UMAP 1" if "UMAP" in how else "PC 1" if "PCA" in how else f"z{i + 1}[0]")
        ax.set_ylabel("UMAP 2" if "UMAP" in how else "PC 2" if "PCA" in how
                      else "jitter" if "1-D" in how else f"z{i + 1}[1]")
    for ax in axes[n:]:
        ax.set_visible(False)
    if classes:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", ls="", color=colours[c], label=run.data.class_name(c))
                   for c in classes]
        figure.legend(handles=handles, title="class", loc="outside right center", fontsize="small")
    figure.suptitle(f"Held-out data ({len(rows)} points) encoded at every latent layer")
    return save(figure, path)


# -- Figure 3b -----------------------------------------------------------------------------------
def reconstructions(run: LoadedRun, path: Path, *, n: int = 10, seed: int = 0) -> Path:
    """Reconstructions of test points from every encoding depth, data at the bottom (Figure 3b)."""
    model, depth = run.model, run.depth
    image = is_image(model.data_shape)
    x = run.data.test_x[subset(len(run.data.test_x), n if image else 500, seed)]
    codes = encode(run.objective, x, device=run.device)
    recs = [decode(model, codes[i - 1], i, device=run.device) for i in range(1, depth + 1)]
    if image:
        stacked = torch.cat([*reversed(recs), x])  # rows: z_N at the top ... z_1, data
        figure = new_figure(max(6, 0.7 * len(x)), 0.7 * (depth + 1) + 0.8)
        ax = figure.subplots()
        h, _ = show_mosaic(ax, stacked, len(x), Display(run.data.test_x))
        names = [f"from z{i}" for i in range(depth, 0, -1)] + ["data"]
        ax.set_yticks(cell_centres(depth + 1, h), names)
        ax.set_title("Reconstructions from each encoding depth (bottom row: data)")
        return save(figure, path)
    figure = new_figure(3.8 * depth, 4)
    axes = np.atleast_1d(figure.subplots(1, depth, squeeze=False)).ravel()
    data = xy(x)
    for i, (ax, rec) in enumerate(zip(axes, recs)):
        points = xy(rec)
        for k in range(min(100, len(x))):
            ax.plot([data[k, 0], points[k, 0]], [data[k, 1], points[k, 1]], c="0.6", lw=0.5)
        ax.scatter(*xy_columns(data), s=5, c=DATA_COLOUR, label="data")
        ax.scatter(*xy_columns(points), s=5, c=MODEL_COLOUR, label=f"from z{i + 1}")
        label_axes_xy(ax, "x", math.prod(model.data_shape))
        ax.set_title(f"reconstructed from z{i + 1}")
        ax.legend(fontsize="small")
    figure.suptitle("Reconstructions from each encoding depth (first two coordinates; grey lines "
                    "join a point to its reconstruction)", fontsize="medium")
    return save(figure, path)


# -- Figure 5b -----------------------------------------------------------------------------------
def interpolations(
    run: LoadedRun, path: Path, *, pairs: int = 8, steps: int = 8, seed: int = 0
) -> Path:
    """Decodes along straight lines in z_N between encoded pairs of test points (Figure 5b)."""
    model, depth = run.model, run.depth
    n = len(run.data.test_x)
    generator = torch.Generator().manual_seed(seed)
    ends = torch.randint(n, (2, pairs), generator=generator)
    x_a, x_b = run.data.test_x[ends[0]], run.data.test_x[ends[1]]
    z_a = encode(run.objective, x_a, device=run.device)[-1]
    z_b = encode(run.objective, x_b, device=run.device)[-1]
    t = torch.linspace(0, 1, steps).reshape(1, steps, *([1] * (z_a.dim() - 1)))
    line = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (pairs, steps, *shape)
    decoded = decode(model, line.flatten(0, 1), depth, device=run.device)
    decoded = decoded.reshape(pairs, steps, *decoded.shape[1:])
    title = f"Interpolations through z{depth} between pairs of held-out points"
    if is_image(model.data_shape):
        cells = torch.cat([x_a[:, None], decoded, x_b[:, None]], 1).flatten(0, 1)
        figure = new_figure(0.75 * (steps + 2) + 0.6, 0.75 * pairs + 0.9)
        ax = figure.subplots()
        _, w = show_mosaic(ax, cells, steps + 2, Display(run.data.test_x))
        ticks = ["data"] + [f"t={float(v):.2f}" for v in t.flatten()] + ["data"]
        ax.set_xticks(cell_centres(steps + 2, w), ticks, fontsize="x-small", rotation=45)
        ax.set_title(title + " (first and last columns: the data)", fontsize="medium")
        return save(figure, path)
    figure = new_figure(6.5, 6)
    ax = figure.subplots()
    data = xy(run.data.test_x[subset(n, 1000, seed)])
    ax.scatter(*xy_columns(data), s=5, c=DATA_COLOUR, label="held-out data")
    for k in range(pairs):
        colour = cycled_colour("tab10", k, pairs)
        path_k = xy(decoded[k])
        ax.plot(*path_k.T, "-o", c=colour, ms=3, lw=1)
        ends_k = xy(torch.stack([x_a[k], x_b[k]]))
        ax.scatter(*xy_columns(ends_k), marker="*", s=90, c=[colour], edgecolors="k",
                   zorder=3, label="end points (data)" if k == 0 else None)
    label_axes_xy(ax, "x", math.prod(model.data_shape))
    ax.set_title(title + "\n(first two coordinates; lines: decodes, stars: the data)",
                 fontsize="medium")
    ax.legend(fontsize="small")
    return save(figure, path)

__all__ = ["CAPTIONS", "embeddings", "interpolations", "plot_run", "project", "reconstructions",
           "samples", "top_grid", "top_latent", "training_curves"]
