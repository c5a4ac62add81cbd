"""Reading ``RUN/metrics.csv`` back, and telling a damaged file from a crash's cut-short last line.

The file is written by :class:`MetricsWriter`: a header of column names
(``step`` among them), then one row of numbers per logged step, each row flushed as it is
written. A crash mid-write (a kill, a full disk) can leave the *last* line cut short; that line is
dropped and rewritten when the run resumes. Anything else (bytes that are not UTF-8 text, a
header that is not column names, a row whose cells are not numbers, a short row before the last)
is damage: :func:`read_metrics_file` raises :class:`MetricsFileError` naming the file, the line
and what is wrong, so a resume refuses *before* it writes anything, and ``hierot plot`` says why.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from pathlib import Path
from typing import TextIO

from hierot.errors import HierotError
from hierot.run._atomic import _name, atomic_open

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
"""A column name: ``step``, ``rec_x``, ``w_match_z5``, ``val_total``, ``lr``."""


class MetricsFileError(HierotError):
    """A ``metrics.csv`` that is not what hierot writes (damaged or replaced)."""


def _damaged(path: Path, what: str) -> MetricsFileError:
    return MetricsFileError(
        f"{path} is damaged: {what}. Nothing was changed; move it aside (the checkpoints do "
        f"not need it) to resume or plot without its rows"
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_metrics_file(path: Path) -> tuple[list[str], list[dict[str, float]]]:
    """The header and the complete rows of ``path`` (``[], []`` when it is missing or empty).

    Raises
    ------
    MetricsFileError
        For a file that is not what hierot writes, naming it, the line and the problem.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                             f"{exc.start})") from None
    if "\x00" in text:
        raise _damaged(path, f"a NUL byte at offset {text.index(chr(0))}")
    lines = list(csv.reader(io.StringIO(text, newline="")))
    if not lines:
        return [], []
    header, body = lines[0], lines[1:]
    bad = [name for name in header if not _COLUMN.match(name)]
    if bad or "step" not in header or len(set(header)) != len(header):
        what = (f"{bad[0]!r} is not a column name" if bad else "no 'step' column"
                if "step" not in header else "a column named twice")
        raise _damaged(path, f"line 1 (the header): {what}")
    cut_short = not text.endswith("\n")  # a crash mid-write leaves the last line unterminated
    rows = []
    for number, cells in enumerate(body, start=2):
        last = number == len(lines)
        if len(cells) != len(header) or not (cells[header.index("step")]).isdigit():
            if last and cut_short:
                break  # the line a crash cut short: rewritten when the run resumes
            raise _damaged(path, f"line {number}: {len(cells)} cells for {len(header)} columns"
                           if len(cells) != len(header) else f"line {number}: step "
                           f"{cells[header.index('step')]!r} is not a step number")
        row = {}
        for name, cell in zip(header, cells):
            if cell == "":
                continue  # a column first logged after this row (val_* terms)
            value = _number(cell)
            if value is None:
                if last and cut_short:
                    break
                raise _damaged(path, f"line {number}, column {name}: {cell[:40]!r} is not a number")
            row[name] = value
        else:
            rows.append(row)
    return header, rows


class MetricsWriter:
    """Appends rows to metrics.csv, flushing each so a crash loses nothing logged.

    A row with columns the header lacks (held-out ``val_*`` terms first logged after some
    training rows) rewrites the file atomically with the header extended; earlier rows leave
    those cells empty.
    """

    def __init__(self, path: Path):
        self.path = path
        self._file: TextIO | None = None
        self._writer: csv.DictWriter | None = None

    def write(self, row: dict[str, float]) -> None:
        file, writer = self._open(row)
        new = [k for k in row if k not in writer.fieldnames]
        if new:
            self._extend_header(new, writer.fieldnames)
            file, writer = self._open(row)
        try:
            writer.writerow(row)
            file.flush()
        except OSError as error:
            _name(error, self.path)
            raise

    def _open(self, row: dict[str, float]) -> tuple[TextIO, csv.DictWriter]:
        """The open file and its writer (opened with the file's header, or ``row``'s keys)."""
        if self._file is None or self._writer is None:
            exists = self.path.exists() and self.path.stat().st_size > 0
            if exists:
                with self.path.open(newline="") as f:
                    fields = next(csv.reader(f))
            else:
                fields = list(row)
            self._file = self.path.open("a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore")
            if not exists:
                self._writer.writeheader()
        return self._file, self._writer

    def _extend_header(self, new: list[str], old: Collection[str]) -> None:
        fields = [*old, *new]
        self.close()
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        with atomic_open(self.path) as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._writer = None, None
