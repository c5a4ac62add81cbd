"""Every user mistake gets a clean error: exit status 2, the field or file named, nothing lost.

Each case stands for a fault found by probing hierot with hand-written bad specs, files and
directories (issue 11, section 3).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from hierot.cli import main
from hierot.datasets import mnist
from hierot.errors import HierotError, SpecError
from hierot.registry import datasets
from hierot.spec.loading import MAX_SPEC_BYTES, load_spec, parse_yaml

VALID = {
    "data": {"name": "toy-hierarchy", "n_train": 64, "n_test": 16, "dims": [6, 3, 2]},
    "layers": [
        {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
    ],
    "train": {"batch_size": 16, "steps": 1, "progress": False},
}


def validate(tmp_path: Path, capsys, text: str | bytes) -> str:
    """``hierot validate`` on a spec file holding ``text``: exit status 2 and no traceback."""
    path = tmp_path / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("hierot validate: error: invalid spec")
    return err


# -- values that validation accepted and training then choked on, or that made no sense ----------
BAD_VALUES = [
    ("layers.0.encoder.hidden=[-5, 32]",
     "layers.0.encoder.hidden.0: Input should be greater than or equal to 1"),
    ("layers.0.encoder.hidden=[0, 16]",
     "layers.0.encoder.hidden.0: Input should be greater than or equal to 1"),
    ("layers.0.decoder.hidden=[9223372036854775808]",
     "layers.0.decoder.hidden.0: Input should be less than or equal to 65536"),
    ("optimizer.betas=[0.9, 1.5]", "optimizer.betas.1: Input should be less than 1"),
    ("seed=1180591620717411303424", "seed: Input should be less than 4294967296"),
    ("seed=-1", "seed: Input should be greater than or equal to 0"),
    ("optimizer.lr=.inf", "optimizer.lr: Input should be a finite number"),
    ("optimizer.lr=.nan", "optimizer.lr: Input should be a finite number"),
    ("optimizer.momentum=.inf", "optimizer.momentum: Input should be a finite number"),
    ("weights={schedule: paper-mnist, lambda_rec: .inf}",
     "weights.lambda_rec: Input should be a finite number"),
    ("weights={schedule: paper-mnist, lambda_match: .nan}",
     "weights.lambda_match: Input should be a finite number"),
    ("weights={schedule: explicit, reconstruction: [1, .inf], match: 1}",
     "weights.reconstruction.1: Input should be a finite number"),
    ("weights={schedule: paper-mnist, lambda_rec: 1.0e+300}",
     "weights: the paper-mnist schedule resolves to non-finite weights (1, 3.333e+299 | 0.0001)"),
    ("divergence={name: sinkhorn, blur: .inf}", "divergence.blur: Input should be a finite number"),
    ("divergence={name: mmd, scales: [.nan]}", "divergence.scales"),
    ("penalties=[{name: abs-log-var, first: .inf}]",
     "penalties.0.first: Input should be a finite number"),
    ("data.noise=.nan", "data.noise: Input should be a finite number"),
    ("layers.0.latent_shape=[true]", "layers.0.latent_shape.0: Input should be a valid integer"),
    ("train.steps=true", "train.steps: Input should be a valid integer"),
    ("train.steps='5'", "train.steps: Input should be a valid integer"),
    ("train.steps=2.0", "train.steps: Input should be a valid integer"),
    ("train.progress=1", "train.progress: Input should be a valid boolean"),
    ("optimizer.lr=true", "optimizer.lr: Input should be a valid number"),
    ("train.prior_samples=1", "train.prior_samples: Input should be greater than or equal to 2"),
    ("train.batch_size=1", "train.batch_size: Input should be greater than or equal to 2"),
]


@pytest.mark.parametrize("override, line", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_named(tmp_path, capsys, override, line):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(VALID))
    assert main(["validate", str(path), "--set", override]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert line in err


def test_penalty_pattern_that_overflows_is_named():
    with pytest.raises(SpecError, match=r"penalties.0: resolves to non-finite layer weights"):
        load_spec(VALID, ["penalties=[{name: abs-log-var, first: 1.0e+300, ratio: 1.0e+300}]"])


@pytest.mark.parametrize("ratio", ["1.0e+308", "1e308", "1e200"])
def test_a_penalty_ratio_whose_powers_overflow_is_named(capsys, ratio):
    """``ratio ** i`` raises OverflowError in Python (issue 27, defect 3)."""
    override = f"penalties=[{{name: abs-log-var, ratio: {ratio}}}]"
    assert main(["validate", "quickstart", "--set", override]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "penalties.0.ratio: first * ratio^4" in err
    assert "overflows a float" in err


@pytest.mark.parametrize("samples", ["0", "-5", "many"])
def test_eval_samples_must_be_a_positive_count(tmp_path, capsys, samples):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(tmp_path), "--samples", samples])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --samples" in err and "Traceback" not in err


def test_eval_sampler_that_is_broken_yaml_is_named(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--sampler", "[1, 2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sampler: '[1, 2' is not valid YAML" in err


def test_duplicate_keys_are_refused_with_both_lines(tmp_path, capsys):
    text = yaml.safe_dump(VALID, sort_keys=False) + "seed: 1\nseed: 2\n"
    err = validate(tmp_path, capsys, text)
    lines = text.splitlines()
    first, second = lines.index("seed: 1") + 1, lines.index("seed: 2") + 1
    assert f"line {second}: duplicate key 'seed' (first given on line {first})" in err


def test_duplicate_keys_in_a_nested_mapping_and_in_set(tmp_path, capsys):
    text = "data: {name: digits, name: mnist}\nlayers: []\ntrain: {steps: 1}\n"
    assert "duplicate key 'name'" in validate(tmp_path, capsys, text)
    with pytest.raises(SpecError, match="duplicate key 'steps'"):
        load_spec(VALID, ["train={steps: 1, steps: 2}"])


def test_merge_keys_may_still_be_overridden():
    text = "b: &b {hidden: [8], x: 1}\nc: {<<: *b, hidden: [4]}\n"
    assert parse_yaml(text)["c"] == {"hidden": [4], "x": 1}


def test_a_spec_that_is_not_utf8(tmp_path, capsys):
    text = yaml.safe_dump(VALID).replace("toy-hierarchy",
                                         "toy-hierarchy  # caf\u00e9").encode("latin-1")
    err = validate(tmp_path, capsys, text)
    assert "not UTF-8 text (byte 0xe9" in err and "spec.yaml" in err


def test_a_huge_spec_is_refused_at_once(tmp_path, capsys):
    text = "\n".join(f"k{i}: {i}" for i in range(MAX_SPEC_BYTES // 8))
    err = validate(tmp_path, capsys, text)
    assert "MiB is not a spec" in err and len(err.splitlines()) == 2


def test_thousands_of_errors_are_counted_not_printed(tmp_path, capsys):
    text = yaml.safe_dump(VALID) + "".join(f"unknown_{i}: {i}\n" for i in range(5000))
    err = validate(tmp_path, capsys, text)
    lines = err.splitlines()
    assert len(lines) == 22
    assert lines[1] == "  unknown_0: Extra inputs are not permitted"
    assert lines[-1] == "  ... and 4980 more problem(s)"


# -- the run directory's place ---------------------------------------------------------------------
def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(VALID))
    assert main(["train", str(spec), "--out", str(tmp_path / "file" / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{tmp_path / 'file'} is a file, not a directory" in err
    assert (tmp_path / "file").read_text() == "not a directory"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys (Linux)")
def test_out_on_a_read_only_file_system(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(VALID))
    assert main(["train", str(spec), "--out", "/sys/hierot-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--out /sys/hierot-run: cannot write in /sys" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_a_read_only_directory(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(VALID))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["train", str(spec), "--out", str(locked / "run")]) == 2
    assert "Permission denied" in capsys.readouterr().err


# -- data files ----------------------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray, cut: int = 0) -> None:
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) - cut])


def mnist_files(raw: Path, n: int = 6) -> dict[str, Path]:
    rng = np.random.RandomState(0)
    files = {}
    for (images, labels) in mnist.IDX_FILES.values():
        write_idx(raw / images, rng.randint(0, 256, (n, 28, 28)))
        write_idx(raw / labels, rng.randint(0, 10, n))
        files[images], files[labels] = raw / images, raw / labels
    return files


def load(name: str, **options):
    return datasets.build(datasets.tagged_options(name)(name=name, **options), seed=0)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_a_missing_idx_file_is_named(tmp_path, name, folder):
    files = mnist_files(tmp_path / folder / "raw")
    files["t10k-images-idx3-ubyte"].unlink()
    with pytest.raises(HierotError,
                       match=r"MNIST file t10k-images-idx3-ubyte \(or .gz\) not found"):
        load(name, root=str(tmp_path))
    for path in files.values():
        path.unlink(missing_ok=True)
    with pytest.raises(HierotError, match=r"MNIST not found"):  # none there: the data set
        load(name, root=str(tmp_path))


def test_truncated_idx_file_is_named_with_its_sizes(tmp_path):
    files = mnist_files(tmp_path / "MNIST" / "raw")
    path = files["train-images-idx3-ubyte"]
    path.write_bytes(path.read_bytes()[:-100])
    expected = 16 + 6 * 28 * 28
    with pytest.raises(HierotError,
                       match=rf"truncated or corrupt IDX file .*expected {expected} bytes, "
                             rf"found {expected - 100}") as info:
        load("mnist", root=str(tmp_path))
    assert str(path) in str(info.value) and "not found" not in str(info.value)


@pytest.mark.parametrize("content, said", [
    (b"", "empty file (0 bytes)"),
    (b"garbage, not labels at all", "is not an IDX file"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 6]) + bytes([1, 2, 3, 4, 5, 99]),
     "labels must be 0..9, found 1..99"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5]) + bytes(5), "expected 6 labels"),
])
def test_bad_label_file_is_named(tmp_path, content, said):
    files = mnist_files(tmp_path / "MNIST" / "raw")
    files["t10k-labels-idx1-ubyte"].write_bytes(content)
    with pytest.raises(HierotError, match=re.escape(said)) as info:
        load("mnist", root=str(tmp_path))
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_corrupt_gzip_idx_is_named(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    for path in mnist_files(debian).values():
        path.rename(path.with_name(path.name + ".gz"))
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(b"\0\0\x08\x01")[:-4])
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setenv("HIEROT_DATA", str(tmp_path / "nothing"))
    with pytest.raises(HierotError, match="truncated or corrupt"):
        load("fashion-mnist")


def test_fashion_mnist_explicit_root_is_used_or_refused(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    mnist_files(debian)  # a good copy elsewhere must not be used instead
    monkeypatch.setattr(mnist, "DEBIAN_FASHION_MNIST", debian)
    files = mnist_files(tmp_path / "root" / "FashionMNIST" / "raw")
    files["train-labels-idx1-ubyte"].write_bytes(files["train-labels-idx1-ubyte"].read_bytes()[:-2])
    with pytest.raises(HierotError, match="train-labels-idx1-ubyte: truncated or corrupt"):
        load("fashion-mnist", root=str(tmp_path / "root"))


def test_empty_svhn_mat_is_named(tmp_path):
    (tmp_path / "SVHN").mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat"):
        (tmp_path / "SVHN" / name).write_bytes(b"")
    with pytest.raises(HierotError, match="train_32x32.mat: not a readable MATLAB v5 file"):
        load("svhn", root=str(tmp_path), splits=["train"])


def test_data_errors_reach_the_command_line_cleanly(tmp_path, capsys):
    files = mnist_files(tmp_path / "MNIST" / "raw")
    files["train-labels-idx1-ubyte"].write_bytes(b"")
    spec = dict(VALID, data={"name": "mnist", "root": str(tmp_path)})
    spec["layers"] = [dict(VALID["layers"][0]), VALID["layers"][1]]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "train-labels-idx1-ubyte: empty file" in err
    assert not (tmp_path / "run").exists()


def test_an_alias_bomb_is_refused(tmp_path, capsys):
    """Nine aliases deep, nine times each: 387 million values from a 300-byte file."""
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    err = validate(tmp_path, capsys, "\n".join(lines) + "\n")
    assert "<spec>: expands to more than 1,000,000 values" in err
