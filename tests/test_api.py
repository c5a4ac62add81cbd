"""The API the CLI stands on: one function per command, the same defaults, no unvalidated spec."""

from __future__ import annotations

import inspect

import pytest
import torch

import hierot
from hierot import api
from hierot.cli import make_parser
from hierot.errors import HierotError, SpecError

TINY = {
    "data": {"name": "digits"},
    "layers": [{"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
                "decoder": {"name": "mlp", "hidden": [8]}}],
    "train": {"batch_size": 16, "steps": 2, "checkpoint_every": 2, "progress": False},
}


def cli_defaults(command: str, *required: str) -> dict:
    return vars(make_parser().parse_args([command, *required]))


@pytest.mark.parametrize("command, function, required, options", [
    ("eval", api.evaluate, ["RUN"],
     ["checkpoint", "device", "samples", "seed", "features", "resamples", "weights"]),
    ("plot", api.plot, ["RUN"], ["checkpoint", "device", "embedding", "weights"]),
    ("sample", api.sample, ["RUN", "--out", "x.pt"],
     ["checkpoint", "device", "n", "seed", "sampler", "path", "weights"]),
    ("compare", api.compare, ["RUN"], ["baseline", "sampler"]),
    ("report", api.report, ["RUN"], []),
    ("list", api.list_components, [], ["kind"]),
    ("sweep", api.sweep_report, ["--report", "DIR"], ["eval_top", "eval_samples", "storage"]),
    ("sweep", api.sweep, ["SWEEP", "--out", "DIR"],
     ["base", "seeds", "metric", "direction", "sampler", "trials", "workers", "threads", "storage",
      "retry_failed", "stale_after"]),
])
def test_each_command_has_an_api_function_with_its_defaults(command, function, required, options):
    parameters = inspect.signature(function).parameters
    defaults = cli_defaults(command, *required)
    for option in options:
        assert parameters[option].default == defaults[option], (command, option)
    assert getattr(hierot, function.__name__) is function


def test_sweep_takes_no_grid_and_no_overrides_unless_told():
    defaults, parameters = cli_defaults("sweep", "S"), inspect.signature(api.sweep).parameters
    assert defaults["grid"] == [] and parameters["grid"].default is None
    assert defaults["overrides"] == [] and parameters["overrides"].default == ()


def test_sweep_refuses_a_base_beside_a_grid_before_anything_is_written(tmp_path):
    with pytest.raises(HierotError, match="with --grid, SWEEP is the base"):
        hierot.sweep("quickstart", tmp_path / "s", grid={"seed": [0, 1]}, base="quickstart")
    assert not (tmp_path / "s").exists()


def test_eval_measures_the_prior_unless_told_otherwise():
    assert cli_defaults("eval", "RUN")["sampler"] is None  # --sampler not given: prior
    assert inspect.signature(api.evaluate).parameters["samplers"].default == ("prior",)
    assert cli_defaults("eval", "RUN")["no_per_layer"] is False
    assert inspect.signature(api.evaluate).parameters["per_layer"].default is True


def test_fit_writes_the_cli_default_run_dir_or_nothing_when_told(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = hierot.fit(TINY, save=False)
    assert result.run_dir is None and list(tmp_path.iterdir()) == []
    hierot.fit(TINY)
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("run-") and (run / "spec.yaml").is_file()
    with pytest.raises(HierotError, match="save=False writes nothing"):
        hierot.fit(TINY, save=False, out=tmp_path / "x")


def test_a_spec_changed_without_validation_cannot_reach_training(tmp_path):
    spec = hierot.validate(TINY)
    broken = spec.model_copy(update={"train": spec.train.model_copy(update={"steps": -5})})
    assert broken.train.steps == -5  # pydantic's model_copy does not validate
    with pytest.raises(SpecError, match=r"train\.steps: Input should be greater than 0"):
        hierot.fit(broken, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(SpecError, match=r"train\.steps"):
        hierot.validate(broken)


def test_sample_and_evaluate_check_their_options_before_any_work(tmp_path):
    run = tmp_path / "run"
    hierot.fit(TINY, out=run)
    drawn = hierot.sample(run, 5, seed=1, out=tmp_path / "x.pt")
    assert drawn.x.shape == (5, 1, 8, 8) and drawn.step == 2 and drawn.how == "prior / ancestral"
    assert torch.equal(torch.load(tmp_path / "x.pt"), drawn.x)
    assert torch.equal(hierot.sample(run, 5, seed=1).x, drawn.x)  # seeded
    with pytest.raises(HierotError, match="unknown sampler 'gmn'"):
        hierot.evaluate(run, samplers=["prior", "gmn"])
    with pytest.raises(HierotError, match="must end in .png"):
        hierot.sample(run, 2, out=tmp_path / "x.txt")
    assert not (run / "eval.json").exists()


def test_report_writes_the_report_of_a_run(tmp_path):
    run = tmp_path / "run"
    hierot.fit(TINY, out=run)
    path = hierot.report(run)
    assert path == run / "report.md" and "## Spec" in path.read_text()


def test_list_components_lists_each_kind_of_the_registries_or_names_the_valid_kinds():
    from hierot.registry import ALL

    every = hierot.list_components()
    assert list(every) == list(ALL) and every["divergences"].kind == "divergences"
    names = [entry.name for entry in hierot.list_components("divergences")["divergences"].entries]
    assert names == ALL["divergences"].names() and "mmd" in names
    with pytest.raises(HierotError, match=r"unknown kind 'divergence'; did you mean "
                                          r"'divergences'\? Valid: callbacks"):
        hierot.list_components("divergence")


def test_the_version_is_one_and_has_its_changelog_entry():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert declared == hierot.__version__
    assert f"\n## {hierot.__version__} - " in (root / "CHANGELOG.md").read_text()
