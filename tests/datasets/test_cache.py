"""``data.storage: stream``: the checked cache, exact training and resume, each rank its share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hierot
from hierot.datasets import _cache
from hierot.evaluation.trained import load_run
from hierot.registry import datasets
from hierot.run import Run
from hierot.training.batches import BatchOrder
from hierot.training.runtime import Runtime
from hierot.training.trainer import Trainer


def write_arrays(folder: Path, n: int = 96, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / "train.npz"
    np.savez(path, x=rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8),
             y=rng.integers(0, 2, n))
    return path


def data_options(tmp_path: Path, storage: str) -> dict:
    return {"name": "arrays", "train": str(tmp_path / "train.npz"), "storage": storage,
            "cache_dir": str(tmp_path / "cache"), "test_fraction": 0.25}


def spec(tmp_path: Path, storage: str, steps: int = 4) -> dict:
    return {"data": data_options(tmp_path, storage),
            "layers": [{"latent_shape": [4], "encoder": {"name": "mlp", "hidden": [16]},
                        "decoder": {"name": "mlp", "hidden": [16], "output": "sigmoid"},
                        "decoder_head": "deterministic"},
                       {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
                        "decoder": {"name": "mlp", "hidden": [8]}}],
            "train": {"batch_size": 16, "steps": steps, "log_every": 1, "checkpoint_every": 2,
                      "progress": False}}


def load(tmp_path: Path, storage: str = "stream"):
    options = data_options(tmp_path, storage)
    return datasets.build(datasets.tagged_options("arrays")(**options), seed=0)


def cache_files(tmp_path: Path) -> tuple[Path, Path]:
    (data,) = (tmp_path / "cache").glob("*.bin")
    return data, data.with_suffix(".json")


def test_stream_holds_the_rows_in_a_checked_file_read_per_batch(tmp_path):
    write_arrays(tmp_path)
    streamed, memory = load(tmp_path), load(tmp_path, "memory")
    assert isinstance(streamed.train_x, _cache.StreamedRows) and isinstance(memory.train_x,
                                                                           torch.Tensor)
    assert streamed.train_x.shape == tuple(memory.train_x.shape) and streamed.scale == 255.0
    rows = torch.tensor([70, 3, 3, 41])
    assert torch.equal(streamed.train_x.read(rows), memory.train_x[rows])
    floats = streamed.as_float(streamed_rows=50)  # what evaluation reads: the first rows
    assert torch.equal(floats.train_x, memory.to_float(memory.train_x[:50]))
    assert torch.equal(floats.train_y, memory.train_y[:50])
    data, record = cache_files(tmp_path)
    meta = json.loads(record.read_text())
    assert data.stat().st_size == meta["bytes"] == 72 * 16 and meta["shape"] == [72, 1, 4, 4]


def test_the_cache_is_written_once_and_a_bad_one_rebuilt_never_used(tmp_path, capsys):
    write_arrays(tmp_path)
    expected = load(tmp_path, "memory").train_x
    load(tmp_path)
    data, record = cache_files(tmp_path)
    written = data.stat().st_mtime_ns
    load(tmp_path)
    assert data.stat().st_mtime_ns == written and capsys.readouterr().err == ""  # reused
    for damage, why in (("truncate", "truncated"), ("flip", "checksum"), ("record", "unreadable")):
        if damage == "truncate":
            data.write_bytes(data.read_bytes()[:-5])
        elif damage == "flip":
            raw = bytearray(data.read_bytes())
            raw[100] ^= 0xFF
            data.write_bytes(bytes(raw))
        else:
            record.write_text("{")
        again = load(tmp_path)
        assert why in capsys.readouterr().err  # said so
        assert torch.equal(again.train_x.read(torch.arange(72)), expected)  # and rebuilt


def test_a_changed_source_file_makes_the_cache_stale(tmp_path, capsys):
    write_arrays(tmp_path)
    first = load(tmp_path).train_x.read(torch.arange(4))
    write_arrays(tmp_path, seed=1)  # same size, new contents and time: the key changes
    second = load(tmp_path)
    assert "stale" in capsys.readouterr().err and len(list((tmp_path / "cache").iterdir())) == 2
    assert torch.equal(second.train_x.read(torch.arange(72)), load(tmp_path, "memory").train_x)
    assert not torch.equal(first, second.train_x.read(torch.arange(4)))


def test_auto_streams_only_what_exceeds_the_memory(monkeypatch):
    monkeypatch.setattr(_cache, "available_memory", lambda: 1000)
    assert _cache.streams("auto", 501) and not _cache.streams("auto", 500)
    assert _cache.streams("stream", 1) and not _cache.streams("memory", 10**12)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return Run(run).load_checkpoint()["model"]


def test_streamed_training_equals_in_memory_and_resumes_exactly(tmp_path):
    write_arrays(tmp_path)
    hierot.fit(spec(tmp_path, "memory"), out=tmp_path / "memory")
    hierot.fit(spec(tmp_path, "stream"), out=tmp_path / "stream")
    hierot.fit(spec(tmp_path, "stream", steps=2), out=tmp_path / "resumed")
    hierot.fit(resume=tmp_path / "resumed", overrides=["train.steps=4"])
    reference = weights(tmp_path / "memory")
    for run in ("stream", "resumed"):
        other = weights(tmp_path / run)
        assert all(torch.equal(reference[k], other[k]) for k in reference), run
    evaluated = load_run(tmp_path / "stream").data  # evaluation reads float rows in memory
    assert evaluated.train_x.dtype == torch.float32 and len(evaluated.train_y) == 72


class Recording(_cache.StreamedRows):
    """Streamed rows that remember every row index read."""

    def read(self, indices):
        self.seen.append(sorted(torch.as_tensor(indices).tolist()))
        return super().read(indices)


def test_each_rank_reads_only_its_share_of_the_global_batch(tmp_path):
    write_arrays(tmp_path)
    built = hierot.build(hierot.load_spec(spec(tmp_path, "stream")))
    rows = built.data.train_x
    read = {}
    for rank in (0, 1):
        recording = Recording(rows.path, rows.shape, rows.np_dtype, rows.offset)
        recording.seen = []
        built.data.train_x = recording
        trainer = Trainer(built, None, Runtime(torch.device("cpu"), rank=rank, world_size=2))
        for _ in range(5):  # crosses an epoch: 72 rows are 4 batches of 16
            trainer._train_step()
        read[rank] = recording.seen
    order = BatchOrder(len(rows), 16, built.spec.seed)
    for step in range(5):
        batch = order.next()
        assert read[0][step] == sorted(batch[:8].tolist())  # rank 0: the first half only
        assert read[1][step] == sorted(batch[8:].tolist())


def test_bad_storage_is_a_spec_error(tmp_path):
    with pytest.raises(hierot.SpecError, match="data.storage"):
        hierot.load_spec({**spec(tmp_path, "disk")})


def test_a_npy_file_is_copied_into_the_cache_without_mapping_it(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 3, 2, 2), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", x[:4])
    options = {"name": "arrays", "train": str(tmp_path / "x.npy"), "test": str(tmp_path / "t.npy"),
               "cache_dir": str(tmp_path / "cache")}
    for storage in ("stream", "memory"):
        built = datasets.build(datasets.tagged_options("arrays")(**options, storage=storage),
                               seed=0)
        rows = built.train_x.read(torch.arange(30)) if storage == "stream" else built.train_x
        assert np.array_equal(np.asarray(rows), x), storage
    split = datasets.build(datasets.tagged_options("arrays")(
        name="arrays", train=str(tmp_path / "x.npy"), storage="stream",
        cache_dir=str(tmp_path / "cache")), seed=0)
    memory = datasets.build(datasets.tagged_options("arrays")(
        name="arrays", train=str(tmp_path / "x.npy"), storage="memory"), seed=0)
    assert torch.equal(split.train_x.read(torch.arange(27)), memory.train_x)
