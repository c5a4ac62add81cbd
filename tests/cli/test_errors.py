"""User errors at the command line exit with status 2 and a clean message, nothing lost:
bad option values of ``hierot eval`` and an ``--out`` that cannot be written (issue 11, section 3).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from _fixtures import TOY_SPEC as VALID  # tests/_fixtures.py

from hierot.cli import main


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


# -- the run directory's place -----------------------------------------------------------------
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


