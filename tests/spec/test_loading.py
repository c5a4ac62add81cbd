"""Loading a spec (``hierot.spec.loading``): bad specs get a clean error, exit status 2, the
field or the line named, no traceback; ``--set`` switching a component by name.

Values validation accepted and training then choked on, YAML that is not a spec (duplicate keys,
not UTF-8, too big, an alias bomb), and thousands of errors counted. Each case stands for a fault
found by probing hierot with hand-written bad specs (issue 11, section 3).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from _fixtures import TOY_SPEC as VALID  # tests/_fixtures.py

from hierot.cli import main
from hierot.errors import SpecError
from hierot.spec.loading import MAX_SPEC_BYTES, dump_spec, load_spec, parse_yaml


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


def test_an_alias_bomb_is_refused(tmp_path, capsys):
    """Nine aliases deep, nine times each: 387 million values from a 300-byte file."""
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    err = validate(tmp_path, capsys, "\n".join(lines) + "\n")
    assert "<spec>: expands to more than 1,000,000 values" in err


def test_switching_a_component_by_name_drops_its_old_options(caplog):
    with caplog.at_level(logging.WARNING, logger="hierot.spec.loading"):
        spec = load_spec("quickstart", ["divergence.name=sinkhorn", "divergence.blur=0.5"])
    assert spec.divergence.name == "sinkhorn" and spec.divergence.blur == 0.5
    (notice,) = caplog.messages
    assert notice == ("--set divergence.name=sinkhorn: switches divergence from 'mmd' to "
                      "'sinkhorn' and drops the old options (estimator, kernel, scales)")


def test_switching_networks_data_and_penalties_by_name(caplog):
    with caplog.at_level(logging.WARNING, logger="hierot.spec.loading"):
        spec = load_spec("quickstart", ["layers.1.encoder.name=mlp",  # same name: options kept
                                        "data.name=digits", "layers.4.cost.name=l1"])
    assert tuple(spec.layers[1].encoder.hidden) == (256, 256)
    assert spec.data.name == "digits" and spec.layers[4].cost.name == "l1"
    assert caplog.messages == []  # {name: mnist-5k} and {name: l2sq} had no options to drop
    raw = yaml.safe_load(dump_spec(load_spec("quickstart", ["penalties=[{name: abs-log-var}]"])))
    with caplog.at_level(logging.WARNING, logger="hierot.spec.loading"):
        spec = load_spec(raw, ["penalties.0.name=sq-log-var"])
    assert spec.penalties[0].name == "sq-log-var"
    assert "switches penalties.0 from 'abs-log-var' to 'sq-log-var'" in caplog.messages[0]
