"""A run's first and last logged values, as ``hierot train`` prints them when it ends."""

from __future__ import annotations

from hierot.run._run import Run


def summary_table(run_dir: Run) -> str:
    """A human-readable table of the first and last logged value of every term."""
    metrics = run_dir.read_metrics()
    if not metrics:
        return "no metrics logged"
    last = metrics[-1]
    held_out = [row for row in metrics if any(k.startswith("val_") for k in row)]
    lines = _first_and_last("term", [r for r in metrics if any(not k.startswith("val_") and k
                                                                not in _NOT_TERMS for k in r)])
    if held_out:  # logged at train.eval_every only: their own first and last evaluations
        lines += _first_and_last("held-out", held_out)
    lines.append(f"wall time {last['wall_time']:.1f} s, run directory {run_dir.path}")
    return "\n".join(lines)


_NOT_TERMS = ("step", "epoch", "wall_time")


def _first_and_last(title: str, rows: list[dict[str, float]]) -> list[str]:
    """Rows ``name  first  last`` of the terms the ``title`` block holds (held-out: ``val_*``)."""
    if not rows:
        return []
    first, last = rows[0], rows[-1]
    held = title == "held-out"
    names = [k for k in last if k not in _NOT_TERMS and k.startswith("val_") == held]
    width = max([len(title), *map(len, names)])
    steps = [f"step {int(r['step'])}" for r in (first, last)]
    return [f"{title:<{width}}  {steps[0]:>14}  {steps[1]:>14}",
            *(f"{n:<{width}}  {first.get(n, float('nan')):>14.6g}  {last[n]:>14.6g}"
              for n in names)]
