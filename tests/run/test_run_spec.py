"""The run-directory boundary: run directories written in hierot 0.1's spec form still load.

``tests/data/run-0.1.0/spec.yaml`` is a resolved spec in the form of hierot 0.1 (``objective:
flat`` and a top-level ``weights:``). The spec loader refuses that form, naming what to write
instead; a run directory holding it is converted by the one converter,
:func:`hierot.run.upgrade`, for eval, plot, sample and resume alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

import hierot
from hierot.cli import main
from hierot.errors import SpecError
from hierot.registry import presets
from hierot.run import Run, load_run_spec, upgrade

OLD_RUN = Path(__file__).parents[1] / "data" / "run-0.1.0"


def test_the_old_form_is_refused_by_the_loader_and_converted_at_the_run_directory():
    old = (OLD_RUN / "spec.yaml").read_text()
    with pytest.raises(SpecError) as info:
        hierot.load_spec(OLD_RUN / "spec.yaml")
    assert [line.split(":")[0] for line in info.value.lines] == ["objective", "weights"]
    assert "write objective: {name: wae, weights: {...}}" in info.value.lines[0]
    spec = load_run_spec(OLD_RUN)
    assert spec.objective.name == "wae"
    assert spec.resolved_weights() == ([1.0, 0.5], 0.1)
    assert (OLD_RUN / "spec.yaml").read_text() == old  # read, not rewritten
    raw = yaml.safe_load(old)
    assert hierot.load_spec(upgrade(raw)) == spec
    assert upgrade(spec.model_dump(mode="json")) == spec.model_dump(mode="json")


def test_an_old_run_directory_evaluates_plots_samples_and_resumes(tmp_path):
    run = tmp_path / "run"
    hierot.fit(load_run_spec(OLD_RUN, ["train.steps=2"]), out=run)
    shutil.copyfile(OLD_RUN / "spec.yaml", run / "spec.yaml")  # as 0.1 wrote it (4 steps)
    assert main(["eval", str(run)]) == 0
    assert (run / "eval.json").is_file()
    assert main(["plot", str(run)]) == 0
    assert any((run / "figures").glob("*.png"))
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "x.pt")]) == 0
    assert torch.load(tmp_path / "x.pt").shape[0] == 5
    assert (run / "spec.yaml").read_text() == (OLD_RUN / "spec.yaml").read_text()
    hierot.fit(resume=run)
    assert Run(run).load_checkpoint()["step"] == 4
    assert load_run_spec(run) == load_run_spec(OLD_RUN)


@pytest.mark.parametrize("name", presets.names())
def test_objective_overrides_work_on_every_shipped_preset(name):
    """``--set objective.X=...``: every preset holds its objective as a mapping."""
    spec = hierot.load_spec(name)
    options = spec.objective.model_dump(mode="json")
    path, value = next(
        (f"weights.{k}", v) for k, v in options.get("weights", {}).items()
        if isinstance(v, float)
    ) if "weights" in options else next(
        (k, v) for k, v in options.items() if isinstance(v, (int, float)) and k != "name"
    )
    changed = hierot.load_spec(name, [f"objective.{path}={value * 2 + 1}"])
    node = changed.objective.model_dump(mode="json")
    for key in path.split("."):
        node = node[key]
    assert node == value * 2 + 1
    assert hierot.load_spec(name, [f"objective.name={spec.objective.name}"]) == spec


def test_options_written_for_a_backend_that_ignores_them_are_dropped_at_the_run_directory(
        tmp_path):
    """Until the POT tolerance's default changed, every resolved ``sinkhorn`` spec carried
    ``tolerance: 1e-06`` whatever the backend: such a run directory still loads, with the same
    experiment, while a spec that sets it on another backend is still refused."""
    raw = hierot.load_spec("quickstart").model_dump(mode="json")
    raw["divergence"] = {"name": "sinkhorn", "backend": "geomloss", "blur": 0.5,
                         "max_iter": 1000, "tolerance": 1e-6}
    with pytest.raises(SpecError, match="tolerance only applies to backend 'pot'"):
        hierot.load_spec(raw)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    spec = load_run_spec(tmp_path)
    assert spec.divergence.backend == "geomloss" and spec.divergence.blur == 0.5
    pot = {**raw, "divergence": {**raw["divergence"], "backend": "pot"}}
    assert upgrade(pot) == pot  # the POT backend's own tolerance is the run's: kept
