"""The training progress bar: its text, and warnings printed above it rather than inside it.

A warning raised while the bar is drawn (POT's "Sinkhorn did not converge", a data loader's, ...)
would otherwise be written into the middle of the bar's line; :func:`progress_bar` routes every
warning through :func:`tqdm.write` while the bar is shown, so the warning gets its own line and
the bar is redrawn below it.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

from tqdm.auto import tqdm


@contextlib.contextmanager
def progress_bar(total: int, initial: int, *, enabled: bool) -> Iterator[tqdm]:
    """A ``tqdm`` bar of ``total`` steps from ``initial``; warnings go above it while it is
    shown."""
    bar = tqdm(total=total, initial=initial, disable=not enabled, desc="train", dynamic_ncols=True)
    shown = warnings.showwarning

    def above_the_bar(message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        tqdm.write(text.rstrip("\n"), file=file or sys.stderr)

    if enabled:
        warnings.showwarning = above_the_bar
    try:
        yield bar
    finally:
        warnings.showwarning = shown
        bar.close()


def short_term_name(name: str) -> str:
    """The progress bar's name of a term: ``rec_x`` -> ``x``, ``rec_z2`` -> ``z2``,
    ``match_z5`` -> ``D5``, ``pen_abs-log-var`` -> ``abs-log-var``."""
    if name.startswith("rec_"):
        return name[4:]
    if name.startswith("match_z"):
        return "D" + name[7:]
    return name.removeprefix("pen_")


def progress_text(last: dict[str, float]) -> str:
    """``loss 9.62 | x 9.58 z1 2.01 ... D5 0.0018``: the total, then every unweighted term
    (``every update skipped`` when the interval took none, see ``train.skip_update``)."""
    if "total" not in last:
        return "every update skipped"
    terms = " ".join(f"{short_term_name(n)} {v:.3g}" for n, v in last.items()
                     if n != "total" and not n.startswith("w_"))
    return f"loss {last['total']:.3g} | {terms}"
