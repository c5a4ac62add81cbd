"""``hierot.cli.main`` as a new user meets it: versions, typos, shorthands, plain-text listings, a
run whose plug-in is gone, a closed pipe, and a fast ``--help``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from hierot.cli import main, make_parser
from hierot.cli._command import overrides_of
from hierot.registry import costs, penalties
from hierot.spec.loading import dump_spec, load_spec


def test_version_names_hierot_and_torch(capsys):
    from importlib.metadata import version

    import hierot

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"hierot {hierot.__version__} (torch {version('torch')}, python ")


@pytest.mark.parametrize("typo, command", [("trian", "train"), ("evl", "eval"), ("lsit", "list")])
def test_mistyped_command_gets_did_you_mean(typo, command, capsys):
    assert main([typo, "quickstart"]) == 2
    err = capsys.readouterr().err
    assert f"unknown command {typo!r}; did you mean {command!r}" in err
    assert f"hierot {command} --help" in err and "Traceback" not in err


def test_unknown_command_without_close_match_lists_the_commands(capsys):
    assert main(["frobnicate"]) == 2
    assert ("unknown command 'frobnicate'. Valid: compare, eval, list, plot"
            in capsys.readouterr().err)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--bogus"], ["trian"], ["--version"]])
def test_help_and_argument_errors_do_not_import_torch(argv):
    code = (f"import sys\nfrom hierot.cli import main\ntry:\n    main({argv!r})\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "False False", done.stderr


def parse(argv: list[str]):
    args = make_parser().parse_args(argv)
    return load_spec(args.spec, overrides_of(args))


def test_shorthands_are_overrides():
    spec = parse(["validate", "quickstart", "--steps", "7", "--device", "cpu", "--seed", "3"])
    assert (spec.train.steps, spec.train.epochs, spec.device, spec.seed) == (7, None, "cpu", 3)
    # applied after --set, so they win; --steps replaces an epoch budget
    spec = parse(["validate", "quickstart", "--set", "train={epochs: 2, batch_size: 32}",
                  "--steps", "5", "--set", "seed=1", "--seed", "4"])
    train = spec.train
    assert (train.steps, train.epochs, train.batch_size, spec.seed) == (5, None, 32, 4)


def test_bad_shorthand_values_exit_2(capsys):
    assert main(["validate", "quickstart", "--device", "gpu"]) == 2
    assert "device: String should match pattern" in capsys.readouterr().err
    assert main(["train", "quickstart", "--steps", "0", "--out", "unused"]) == 2
    assert "train.steps: Input should be greater than 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "quickstart", "--seed", "one"])
    assert exit_.value.code == 2


def test_seed_does_not_apply_to_resume(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--seed", "1"]) == 2
    assert "--seed does not apply to --resume" in capsys.readouterr().err


def test_list_prints_plain_text(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert ":math:" not in out and "\\" not in out and "``" not in out
    assert penalties.get("abs-log-var").summary == (
        "Eq. (12): Σ_i λ_i^Σ Σ_m |log Σ_i[m]| (Rubenstein et al., 2018).")
    assert costs.get("l2sq").summary == (
        "Squared Euclidean cost c(z, z̃) = ‖z - z̃‖_2^2 (the paper's choice).")


def fake_run(tmp_path, environment: dict | None):
    """A run directory whose spec uses the divergence 'moments', from a plug-in not installed."""
    raw = yaml.safe_load(dump_spec(load_spec("quickstart")))
    raw["divergence"] = {"name": "moments", "order": 4}
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text(yaml.safe_dump(raw))
    if environment is not None:
        (run / "environment.json").write_text(json.dumps(environment))
    return run


@pytest.mark.parametrize("command", ["eval", "plot", "report"])
def test_run_of_an_uninstalled_plugin_names_its_package(tmp_path, capsys, command):
    run = fake_run(tmp_path, {"packages": {}, "plugins": {
        "divergences": {"moments": "hierot-moments 0.2.0"}, "costs": {}}})
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err
    assert ("divergence.name: unknown divergence 'moments': the run used it from hierot-moments "
            "0.2.0 (environment.json); install it with `pip install hierot-moments==0.2.0`. "
            "Valid: ") in err
    assert "Traceback" not in err
    assert main(["train", "--resume", str(run)]) == 2
    assert "`pip install hierot-moments==0.2.0`" in capsys.readouterr().err


def test_run_without_environment_record_lists_the_valid_names(tmp_path, capsys):
    run = fake_run(tmp_path, None)
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "unknown divergence 'moments'. Valid: " in err and "pip install" not in err


def test_a_reader_that_closes_the_pipe_stops_the_listing_quietly():
    """`hierot list | head -1`: no traceback and no error message, the SIGPIPE exit status."""
    import os
    import signal

    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written
    proc = subprocess.run([sys.executable, "-m", "hierot", "list"], stdout=writer,
                          stderr=subprocess.PIPE, text=True, check=False, timeout=120)
    os.close(writer)
    assert proc.stderr == ""
    assert proc.returncode == 128 + signal.SIGPIPE
