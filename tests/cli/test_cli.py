"""The `hierot` command: exit codes, messages, and that nothing user-caused is a traceback."""

from __future__ import annotations

import pytest
import yaml

from hierot.cli import main
from hierot.registry import presets


def test_validate_preset(capsys):
    assert main(["validate", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "valid (stacked-wae objective, 5 latent layers" in out
    assert "StackedWAE, Eq. (10); weights of the layer terms 1, 0.001563" in out


def test_bad_spec_exits_2_with_every_problem(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({
        "data": {"name": "mnist-5kk"}, "layers": [{"latent_shape": [2]}], "train": {"steps": 0}
    }))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "data.name: unknown dataset 'mnist-5kk'; did you mean 'mnist-5k'" in err
    assert "layers.0.encoder: Field required" in err
    assert "train.steps: Input should be greater than 0" in err


def test_unknown_preset_and_override_errors(capsys):
    assert main(["train", "quickstrt"]) == 2
    assert "did you mean 'quickstart'" in capsys.readouterr().err
    assert main(["validate", "quickstart", "--set", "train.batch_size=-1"]) == 2
    assert "train.batch_size" in capsys.readouterr().err


def test_show_prints_the_preset_yaml(capsys):
    assert main(["show", "quickstart"]) == 0
    assert (yaml.safe_load(capsys.readouterr().out)
            == yaml.safe_load(presets.get("quickstart").factory()))
    assert main(["show", "quickstart", "--resolved"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["optimizer"]["name"] == "adam"


@pytest.mark.parametrize("kind",
                         ["divergences", "networks", "costs", "penalties", "datasets", "presets"])
def test_list(kind, capsys):
    assert main(["list", kind]) == 0
    assert "mmd" in capsys.readouterr().out or kind != "divergences"


def test_list_unknown_kind(capsys):
    assert main(["list", "divergence"]) == 2
    assert "did you mean 'divergences'" in capsys.readouterr().err


def test_train_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--set", "data={name: digits}", "--set", "train.batch_size=32", "--set",
              "train.progress=false"]
    assert main(["train", "quickstart", "--out", str(out), "--set", "train.steps=3", *common]) == 0
    assert "rec_x" in capsys.readouterr().out
    assert main(["train", "quickstart", "--out", str(out), "--set", "train.steps=3", *common]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--set", "train.steps=5"]) == 0
    assert "step 5" in capsys.readouterr().out
