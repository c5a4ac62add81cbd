"""hierot._yaml: numbers as people write them (YAML 1.2), in files and ``--set``, everywhere."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from hierot._yaml import DuplicateKeyError, RefusedTagError, parse_yaml
from hierot.cli import main
from hierot.errors import HierotError, SpecError
from hierot.evaluation.samplers import parse_sampler
from hierot.spec.loading import dump_spec, load_spec

ROOT = Path(__file__).resolve().parent.parent

NUMBERS = [
    ("1e-3", 1e-3), ("1E-3", 1e-3), ("1.0e6", 1e6), ("-2E5", -2e5), ("+1e3", 1e3), ("2e+2", 200.0),
    (".5", 0.5), ("-.5e2", -50.0), ("1.", 1.0), ("0.001", 1e-3), ("1.0e+6", 1e6), ("1_000.5",
                                                                                   1000.5),
    ("1e308", 1e308), ("-1.7976931348623157e308", -1.7976931348623157e308),
]


@pytest.mark.parametrize("text, value", NUMBERS)
def test_every_usual_float_is_a_float(text, value):
    got = parse_yaml(f"x: {text}")["x"]
    assert isinstance(got, float) and got == value


@pytest.mark.parametrize("text, value", [("7", 7), ("-3", -3), ("0x10", 16), ("1_000", 1000)])
def test_integers_stay_integers(text, value):
    got = parse_yaml(text)
    assert type(got) is int and got == value


@pytest.mark.parametrize("text", ["1e", "e5", "1.2.3", "1e-", "mmd", "1e-3x", "v1.0"])
def test_words_that_only_look_numeric_stay_strings(text):
    assert parse_yaml(text) == text


def test_special_floats_and_quoted_numbers():
    assert parse_yaml(".inf") == math.inf and parse_yaml("-.inf") == -math.inf
    assert math.isnan(parse_yaml(".nan"))
    assert parse_yaml("'1e-3'") == "1e-3"  # quoted: the user asked for a string


def test_duplicate_keys_and_binary_are_refused():
    with pytest.raises(DuplicateKeyError, match="line 2: duplicate key 'a'"):
        parse_yaml("a: 1\na: 2\n")
    with pytest.raises(RefusedTagError, match="!!binary"):
        parse_yaml("x: !!binary aGVsbG8=\n")


def test_exponent_numbers_in_a_spec_file_and_in_set(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(dump_spec(load_spec("quickstart")).replace("lr: 0.001", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert load_spec(path).optimizer.lr == 1e-3
    assert load_spec(path, ["optimizer.lr=1.0e6"]).optimizer.lr == 1e6
    assert load_spec("quickstart", ["optimizer.lr=2E-4"]).optimizer.lr == 2e-4


def test_cli_validate_takes_1e_minus_3(capsys):
    assert main(["validate", "quickstart", "--set", "optimizer.lr=1e-3"]) == 0
    assert "valid" in capsys.readouterr().out


def test_binary_in_a_spec_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(dump_spec(load_spec("quickstart")) + "name: !!binary aGVsbG8=\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "!!binary values are not accepted" in err


def test_sampler_options_read_exponents():
    assert parse_sampler("{name: gmm, n_components: 3, reg_covar: 1e-5}").reg_covar == 1e-5


def test_a_broken_sampler_is_a_clean_error():
    with pytest.raises(HierotError, match=r"sampler: '\[1, 2' is not valid YAML"):
        parse_sampler("[1, 2")


def test_sweep_budget_set_reads_exponents(tmp_path):
    pytest.importorskip("optuna")
    from hierot.sweeps import load_sweep

    sweep, _ = load_sweep("mnist-lambda-grid.v1", overrides=["optimizer.lr=1e-3"])
    assert sweep.budget["optimizer.lr"] == 1e-3


def _yaml_loads(path: Path) -> list[int]:
    """Lines of ``path`` calling ``yaml.load``/``yaml.safe_load``/``yaml.full_load``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "yaml" and node.attr in ("load", "safe_load", "full_load")):
            lines.append(node.lineno)
    return lines


def test_the_package_and_benchmarks_read_yaml_one_way():
    files = [*(ROOT / "hierot").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    offenders = {str(f.relative_to(ROOT)): _yaml_loads(f) for f in files
                 if f.name != "_yaml.py" and _yaml_loads(f)}
    assert offenders == {}, "read YAML with hierot._yaml.parse_yaml"


def test_spec_error_for_duplicate_key_is_a_spec_error(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(SpecError, match="duplicate key 'seed'"):
        load_spec(path)
