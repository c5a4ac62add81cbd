"""The per-layer rows of the training benchmarks' tables, one renderer for all of them.

A table has one column per arm (a summary of its seeds: :func:`benchmarks.objectives.summarise`,
mean ± sample sd) and one row per number; the per-layer rows are the reconstruction error from
every depth (``hierot eval``'s ``reconstruction.mse``), the linear-probe accuracy of the labels,
the active units (Burda et al. 2016, posterior-mean variance > 0.01) and the KL term of every
layer of the hierarchical ELBO. ``benchmarks.objectives`` and the results page
(``benchmarks._results_page``) both render them here.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks._runs import fmt

Row = tuple[str, Callable[[dict], str]]
"""A row: its label and the cell of one column's summary."""


def table(columns: dict[str, dict], rows: list[Row]) -> list[str]:
    """Markdown lines: a header of the ``columns``' names, then one line per row."""
    lines = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for label, pick in rows:
        lines.append(f"| {label} | " + " | ".join(pick(s) for s in columns.values()) + " |")
    return lines


def layer_rows(columns: dict[str, dict], *, kl: Callable[[dict], str | None] | None = None,
               kl_label: str = "KL {z} (nats)") -> list[Row]:
    """The per-layer rows (module docstring), bottom layer first within each quantity.

    Parameters
    ----------
    columns:
        ``{name: summary}``, each with ``rec_mse``, ``probe``, ``active``, ``active_dims`` and
        ``kl`` per layer (``{"z1": mean_std, ...}``).
    kl:
        For a column's summary, ``None`` to show its KL or the text its KL cells show instead
        (e.g. ``n/a`` for a WAE, whose near-deterministic encoders make the Monte-Carlo KL
        meaningless); default: every column's KL is shown.
    kl_label:
        The KL rows' label, ``{z}`` the layer.
    """
    first = next(iter(columns.values()))
    layers = list(first["probe"])
    shown = kl or (lambda s: None)

    def kl_cell(s: dict, z: str) -> str:
        instead = shown(s)
        return fmt(s["kl"][z]) if instead is None else instead

    rows: list[Row] = []
    rows += [(f"rec MSE/pixel from {z}", lambda s, z=z: fmt(s["rec_mse"][z])) for z in layers]
    rows += [(f"probe accuracy {z}", lambda s, z=z: fmt(s["probe"][z])) for z in layers]
    rows += [(f"active units {z} (of {first['active_dims'][z]})",
              lambda s, z=z: fmt(s["active"][z], 2)) for z in layers]
    rows += [(kl_label.format(z=z), lambda s, z=z: kl_cell(s, z)) for z in layers]
    return rows
