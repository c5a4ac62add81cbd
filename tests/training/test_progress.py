"""``hierot.training.progress``: the progress bar's text and warnings printed above the bar."""

from __future__ import annotations

import sys

from hierot.training.progress import progress_text


def test_progress_text_shows_every_unweighted_term():
    last = {"rec_x": 9.58341, "rec_z1": 2.0, "match_z5": 0.0018123, "pen_abs-log-var": 12.345,
            "w_rec_x": 9.58341, "w_match_z5": 1.8e-7, "total": 9.6234}
    assert progress_text(last) == "loss 9.62 | x 9.58 z1 2 D5 0.00181 abs-log-var 12.3"


def test_a_warning_during_training_gets_its_own_line_above_the_bar(capsys):
    import warnings

    from hierot.training.progress import progress_bar

    def plain(message, category, filename, lineno, file=None, line=None):  # Python's default
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown = plain
        with progress_bar(10, 0, enabled=True) as bar:
            bar.update(3)
            bar.refresh()
            warnings.warn("Sinkhorn did not converge", UserWarning)
            bar.update(7)
        assert warnings.showwarning is shown
    lines = capsys.readouterr().err.replace("\r", "\n").split("\n")
    warned = [line for line in lines if "UserWarning: Sinkhorn did not converge" in line]
    assert len(warned) == 1 and "train:" not in warned[0] and "%" not in warned[0]
