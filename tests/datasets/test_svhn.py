"""A damaged SVHN file is named (issue 11, section 3)."""

from __future__ import annotations

import pytest

from hierot.errors import HierotError
from hierot.registry import datasets


def load(name: str, **options):
    return datasets.build(datasets.tagged_options(name)(name=name, **options), seed=0)


def test_empty_svhn_mat_is_named(tmp_path):
    (tmp_path / "SVHN").mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat"):
        (tmp_path / "SVHN" / name).write_bytes(b"")
    with pytest.raises(HierotError, match="train_32x32.mat: not a readable MATLAB v5 file"):
        load("svhn", root=str(tmp_path), splits=["train"])
