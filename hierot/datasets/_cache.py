"""``data.storage``: a training set held in memory or streamed from a uint8 cache file.

``stream`` writes the training rows once, in their native dtype (uint8 for images), to a flat
cache file ``<cache_dir>/<name>-<digest of the options>.bin`` beside a ``.json`` record of its
key (the options and the source files' paths, sizes and modification times), shape, dtype, size
in bytes and CRC-32. Later runs open the cache after checking the key, the size and the
checksum; a cache whose key differs (a source file changed: stale), whose size is wrong
(truncated) or whose checksum does not match (damaged) is rebuilt in place, never used, and
said so on stderr. The data file is written to a temporary name and
renamed, and its record is written last, so a write cut short leaves no record and is rebuilt.

A streamed set is read batch by batch (:class:`StreamedRows`): each row with one ``pread`` in
file order, so the process holds only the batch (the operating system's page cache, which it
may drop, holds the rest). The file is read, not mapped: the pages of a mapping count in the
process's resident set once touched, so a mapped 2 GB set would look 2 GB large after an
epoch. The trainer's batch order (epoch, offset) is unchanged, so a resume is
as exact as in memory, and under data parallelism each rank reads only the rows of its shard.

``auto`` streams when the training rows take more than :data:`AUTO_FRACTION` of the memory
available (``MemAvailable`` of ``/proc/meminfo``; the machine's total elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import DTypeLike
from pydantic import Field
from torch import Tensor

from hierot.datasets._common import data_root
from hierot.errors import HierotError

Storage = Literal["memory", "stream", "auto"]
AUTO_FRACTION = 0.5
"""``storage: auto`` streams a training set larger than this fraction of the available memory."""
FORMAT = 1
CRC_BLOCK = 1 << 24


def storage_field() -> Any:
    return Field("auto", description="memory: hold the training set whole; stream: read batches "
                 "from a uint8 cache file; auto: stream when larger than half the "
                 "available memory")


def cache_dir_field() -> Any:
    return Field(None, description="folder of the streaming cache; null means DATA_ROOT/cache")


class StreamedRows:
    """Rows of a file read on demand: ``len``, ``shape``, ``dtype`` and :meth:`read`.

    The rows are C-ordered, ``offset`` bytes into the file (a cache file: 0; a ``.npy`` file: its
    header's length). A file descriptor is opened on first read, per process.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int = 0):
        self.path, self.shape, self.np_dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.offset = offset
        self.dtype = torch.from_numpy(np.zeros(0, self.np_dtype)).dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.np_dtype.itemsize
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # a file descriptor does not cross processes

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def to(self, device: Any = None) -> StreamedRows:
        """Itself: the rows stay in the file and are moved batch by batch."""
        return self

    def read(self, indices: Tensor | np.ndarray) -> Tensor:
        """Rows ``indices`` in the stored dtype, each read with one ``pread`` in file order."""
        wanted = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64).reshape(-1)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = np.empty((len(wanted), *self.shape[1:]), dtype=self.np_dtype)
        flat = out.reshape(len(wanted), -1).view(np.uint8)
        for slot in np.argsort(wanted, kind="stable"):
            at = self.offset + int(wanted[slot]) * self.row_bytes
            data = os.pread(self._fd, self.row_bytes, at)
            if len(data) != self.row_bytes:
                raise HierotError(f"{self.path}: the file was cut short while being read")
            flat[slot] = np.frombuffer(data, dtype=np.uint8)
        return torch.from_numpy(out)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``; else the total)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def streams(storage: Storage, nbytes: int) -> bool:
    """Whether ``storage`` streams a training set of ``nbytes`` bytes."""
    if storage == "auto":
        return nbytes > AUTO_FRACTION * available_memory()
    return storage == "stream"


def fingerprint(files: Iterable[Path]) -> list[list]:
    """Path, size and modification time of each source file: what makes a cache stale."""
    out = []
    for f in sorted(Path(p) for p in files):
        stat = f.stat()
        out.append([str(f.resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def cache_key(name: str, options: dict, files: Iterable[Path]) -> str:
    """A digest of the data set's name, its options and its source files' fingerprint."""
    blob = json.dumps([name, options, fingerprint(files)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_folder(cache_dir: str | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else data_root(None) / "cache"


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def _check(data: Path, record: Path, key: str) -> tuple[dict | None, str]:
    """The cache's record when the cache may be used, else ``None`` and why not."""
    if not record.is_file() or not data.is_file():
        return None, "no cache yet"
    try:
        meta = json.loads(record.read_text())
        expected = int(meta["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{record} is unreadable"
    if meta.get("format") != FORMAT or meta.get("key") != key:
        return None, "stale (the options or the source files changed)"
    if data.stat().st_size != expected:
        return None, f"truncated ({data.stat().st_size} bytes, expected {expected})"
    if _crc(data) != meta.get("crc32"):
        return None, "damaged (checksum mismatch)"
    return meta, ""


def open_or_write(folder: Path, name: str, stem: str, key: str, shape: tuple[int, ...],
                  dtype: np.dtype, chunks: Any) -> StreamedRows:
    """The cache of ``key``: opened when intact, else (re)built from ``chunks()``.

    Parameters
    ----------
    folder:
        The cache folder (made if missing).
    name:
        The data set's name (the files' prefix).
    stem:
        What tells caches of one data set apart (a digest of its options).
    key:
        :func:`cache_key` of the data set: its options and its source files.
    shape, dtype:
        Of the whole training set, rows first.
    chunks:
        A callable returning an iterable of arrays of consecutive rows, in order, whose lengths
        add up to ``shape[0]``; called only when the cache is (re)built.
    """
    data, record = folder / f"{name}-{stem}.bin", folder / f"{name}-{stem}.json"
    meta, why = _check(data, record, key)
    if meta is None:
        if why != "no cache yet":
            print(f"hierot: rebuilding the streaming cache {data}: {why}", file=sys.stderr)
        _write(folder, data, record, key, shape, np.dtype(dtype), chunks)
    return StreamedRows(data, shape, np.dtype(dtype))


def _write(folder: Path, data: Path, record: Path, key: str, shape: tuple[int, ...],
           dtype: np.dtype, chunks: Any) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        record.unlink(missing_ok=True)  # no record: never used until rewritten whole
        partial = data.with_suffix(".bin.partial")
        rows, crc = 0, 0
        with open(partial, "wb") as f:
            for chunk in chunks():
                block = np.ascontiguousarray(chunk, dtype=dtype)
                if block.shape[1:] != tuple(shape[1:]):
                    raise HierotError(f"{data.name}: a chunk of shape {block.shape} for rows "
                                      f"{tuple(shape[1:])}")
                raw = block.tobytes()
                f.write(raw)
                crc = zlib.crc32(raw, crc)
                rows += len(block)
        if rows != shape[0]:
            raise HierotError(f"{data.name}: wrote {rows} rows, expected {shape[0]}")
        os.replace(partial, data)
        meta = {"format": FORMAT, "key": key, "shape": list(shape), "dtype": dtype.str,
                "bytes": rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize,
                "crc32": crc}
        tmp = record.with_suffix(".json.partial")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, record)
    except OSError as exc:
        raise HierotError(f"data.cache_dir: cannot write the streaming cache in {folder}: "
                          f"{exc}") from None


def hold(name: str, options: Any, files: Iterable[Path], shape: tuple[int, ...],
         dtype: DTypeLike, chunks: Any) -> Tensor | StreamedRows:
    """The training rows as ``options.storage`` says: a tensor in memory or a streamed cache.

    ``chunks()`` yields consecutive rows (arrays) in order; in memory they fill one array.
    ``files`` are the source files whose sizes and times key the cache (with the options other
    than ``storage`` and ``cache_dir``).
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if streams(options.storage, nbytes):
        kept = options.model_dump(mode="json", exclude={"storage", "cache_dir"})
        stem, key = cache_key(name, kept, [])[:16], cache_key(name, kept, files)
        return open_or_write(cache_folder(options.cache_dir), name, stem, key, shape, dtype,
                             chunks)
    out, start = np.empty(shape, dtype=dtype), 0
    for chunk in chunks():
        out[start:start + len(chunk)] = chunk
        start += len(chunk)
    return torch.from_numpy(out)
