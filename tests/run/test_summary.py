"""hierot.run.summary_table: the table hierot train prints at the end of a run."""

from __future__ import annotations

from _fixtures import train_spec  # tests/_fixtures.py

import hierot
from hierot.run import Run


def test_the_end_of_training_table_shows_held_out_terms_at_their_own_steps(tmp_path):
    """``val_*`` are logged at train.eval_every only: no ``nan`` for the first logged step."""
    from hierot.run import summary_table

    hierot.fit(train_spec("cpu", "train.steps=4", "train.eval_every=3"), out=tmp_path / "r")
    table = summary_table(Run(tmp_path / "r"))
    assert "nan" not in table
    lines = table.splitlines()
    assert lines[0].split() == ["term", "step", "1", "step", "4"]
    held = lines.index(next(line for line in lines if line.startswith("held-out")))
    assert lines[held].split() == ["held-out", "step", "3", "step", "4"]
    assert all(line.startswith("val_") for line in lines[held + 1:-1])
    assert not any(line.startswith("val_") for line in lines[:held])
