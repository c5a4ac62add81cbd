"""``hierot sweep``: the sweep file, workers sharing one Optuna storage, recovery, the report.

The multi-process tests start real worker processes on a real journal file (and, when
``HIEROT_TEST_POSTGRES_URL`` names a database, on a real PostgreSQL server) and read the study
back with Optuna.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from hierot.api import fit
from hierot.cli import main
from hierot.sweeps import (
    _optuna,
    load_sweep,
)
from hierot.sweeps._directory import read_sweep_dir
from hierot.sweeps._optuna import open_storage, open_study
from hierot.sweeps._worker import recover
from hierot.sweeps.schema import check_against_base, override

TINY_SPEC = {
    "seed": 0,
    "device": "cpu",
    "data": {"name": "toy-hierarchy", "n_train": 256, "n_test": 64, "dims": [6, 3, 2]},
    "layers": [
        {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}, "decoder_head": "deterministic"},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [8]},
         "decoder": {"name": "mlp", "hidden": [8]}},
    ],
    "objective": {"name": "stacked-wae",
                  "weights": {"schedule": "paper-mnist", "lambda_rec": 0.05, "lambda_match": 1e-4}},
    "train": {"batch_size": 32, "steps": 6, "log_every": 2, "checkpoint_every": 2,
              "progress": False},
}
GRID = {"weights.lambda_rec": [0.05, 0.5], "weights.lambda_match": [1e-4, 1e-2]}


def tiny_sweep(tmp_path: Path, **fields) -> Path:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    sweep = {"base": "tiny.yaml", "params": GRID, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def study_of(sweep_dir: Path, url: str | None = None):
    sweep, _ = read_sweep_dir(sweep_dir)
    return open_study(sweep, open_storage(url, sweep_dir), create=False)


def complete_points(study) -> list[tuple]:
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(tuple(sorted(t.params.items())) for t in done)


ALL_POINTS = sorted(
    tuple(sorted({"weights.lambda_rec": r, "weights.lambda_match": m}.items()))
    for r in GRID["weights.lambda_rec"] for m in GRID["weights.lambda_match"]
)


# -- the sweep file ------------------------------------------------------------------------------
@pytest.mark.parametrize("change, expected", [
    ({"params": {"weights.lambda_rec": {"low": 1, "high": 0.1}}},
     "params.weights.lambda_rec: low (1) must be smaller than high (0.1)"),
    ({"params": {"weights.lambda_rec": {"low": 0, "high": 1, "log": True}}},
     "params.weights.lambda_rec: log: true needs low > 0"),
    ({"params": {"weights.lambda_rec": []}},
     "params.weights.lambda_rec: List should have at least 1"),
    ({"sedes": 2}, "sedes: Extra inputs are not permitted"),
    ({"seeds": 0}, "seeds: Input should be greater than 0"),
    ({"direction": "down"}, "direction: Input should be 'minimize' or 'maximize'"),
    ({"metric": "fdc"}, "metric: 'fdc' is not heldout.<key>"),
    ({"sampler": "tpe"}, "trials: sampler tpe needs the number of points"),
    ({"params": {"weights.lambda_rec": {"low": 0.01, "high": 1}}, "sampler": "grid"},
     "sampler: grid needs a list of values for every parameter; weights.lambda_rec is not"),
])
def test_bad_sweep_file_names_the_field(tmp_path, capsys, change, expected):
    path = tiny_sweep(tmp_path)
    raw = {**yaml.safe_load(path.read_text()), **change}
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"invalid sweep {path}" in err and expected in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written for a bad file


def test_a_parameter_path_is_checked_against_the_base_spec(tmp_path, capsys):
    path = tiny_sweep(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {"weights.lambda_reck": [0.1], "train.steps": [5, -1]}
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "params.weights.lambda_reck: value 0.1: weights.paper-mnist.lambda_reck" in err or \
        "params.weights.lambda_reck: value 0.1: weights.lambda_reck: Extra inputs" in err or \
        "params.weights.lambda_reck: value 0.1: objective.weights.lambda_reck: Extra" in err, err
    assert "params.train.steps: value -1: train.steps: Input should be greater than 0" in err


@pytest.mark.parametrize("metric, expected", [
    ("heldout.nosuch", "did you mean"),
    ("heldout.unweighted.match_z3", "did you mean heldout.unweighted.match_z2"),
    ("heldout.total.x", "valid: heldout.total"),
])
def test_an_unknown_heldout_metric_is_refused_before_training(tmp_path, capsys, metric, expected):
    path = tiny_sweep(tmp_path, metric=metric)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"metric: {metric!r} is not a number in heldout.json" in err and expected in err, err
    assert "heldout.unweighted.rec_z1" in err and "heldout.weighted.match_z2" in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_threads_below_one_are_refused(tmp_path, capsys, threads):
    path = tiny_sweep(tmp_path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--threads", threads]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_documented_sweep_file_is_valid():
    docs = (Path(__file__).parents[2] / "docs" / "sweeps.md").read_text()
    block = docs.split("## The sweep file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    sweep = load_sweep(yaml.safe_load(block))[0]
    assert sweep.params["layers.0.encoder.hidden"].choices == [[256, 256], [512, 512]]
    assert sweep.params["optimizer.lr"].log and sweep.resolved_sampler == "tpe"


def test_a_choice_that_is_not_a_scalar_or_list_is_one_clean_line(tmp_path, capsys):
    path = tiny_sweep(tmp_path, trials=2)
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {"layers.0.encoder.hidden": {"choices": [[8, 8], {"a": 1}]}}
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n  ") == 1, err  # one problem line, no validator internals
    assert "params.layers.0.encoder.hidden.choices.1: a choice is a number, a string" in err


@pytest.mark.slow
def test_list_valued_choices_train_and_read_back(tmp_path):
    path, out = tiny_sweep(tmp_path, sampler="random", trials=3), tmp_path / "out"
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {"layers.0.encoder.hidden": {"choices": [[8, 8], [4]]}}
    raw["budget"] = {"train.steps": 2}
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    trials = study_of(out).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    records = json.loads((out / "trials.json").read_text())["trials"]
    for trial, record in zip(trials, records):
        hidden = record["params"]["layers.0.encoder.hidden"]
        assert hidden in ([8, 8], [4])  # the list, not Optuna's text of it
        run = out / "trials" / trial.user_attrs["run_dir"] / "seed-0"
        assert yaml.safe_load((run / "spec.yaml").read_text())["layers"][0]["encoder"][
            "hidden"] == hidden


def test_grid_points_and_overrides_round_trip():
    sweep, _ = load_sweep({"base": "quickstart", "params": GRID})
    assert sweep.resolved_sampler == "grid" and sweep.grid_size == 4
    assert sweep.grid_points()[1] == {"weights.lambda_rec": 0.05, "weights.lambda_match": 1e-2}
    for value in (1e-4, 1e-5, 1e30, 0.05, 1.0, 3, "adam", True,
                  [64, 32]):  # 1e-05 is a str to PyYAML
        path, text = override("a.b", value).split("=", 1)
        assert path == "a.b" and yaml.safe_load(text) == value
        assert type(yaml.safe_load(text)) is type(value)
    odd, _ = load_sweep({"base": "quickstart", "params": {"optimizer.lr": ["1e-4", 3, "x"]}})
    assert odd.params["optimizer.lr"] == [1e-4, 3, "x"]  # YAML 1.1 reads 1e-4 as a string
    base = yaml.safe_load(check_against_base(sweep, "x"))
    # the base itself is not changed (resolved specs hold the weights in the objective, issue 12)
    assert base["objective"]["weights"]["lambda_rec"] == 0.05


def test_without_optuna_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    assert main(["sweep", str(tiny_sweep(tmp_path)), "--out", str(tmp_path / "out")]) == 2
    assert "pip install 'hierot[sweep]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_sweep_preset_lists_the_valid_ones(capsys):
    assert main(["sweep", "mnist-lambda-gird.v1", "--out", "x"]) == 2
    assert "did you mean 'mnist-lambda-grid.v1'" in capsys.readouterr().err


def test_the_shipped_sweep_is_the_papers_grid(capsys):
    assert main(["sweep", "--list"]) == 0
    assert "mnist-lambda-grid.v1" in capsys.readouterr().out
    sweep, _ = load_sweep("mnist-lambda-grid.v1")
    assert sweep.base == "mnist-stackedwae.v1" and sweep.grid_size == 25
    assert {(p["weights.lambda_rec"], p["weights.lambda_match"]) for p in sweep.grid_points()} == {
        (r, m) for r in (0.01, 0.05, 0.1, 0.5, 1) for m in (1e-4, 1e-3, 1e-2, 1e-1, 1)}
    check_against_base(sweep, "mnist-lambda-grid.v1")  # every point is a valid spec


def test_the_sweep_the_many_machines_docs_run_is_shipped():
    import re

    docs = (Path(__file__).parents[2] / "docs" / "sweeps.md").read_text()
    names = set(re.findall(r"^hierot sweep (\S+) --out machine\d", docs, re.MULTILINE))
    assert names == {"tiny-sweep.v1"}
    sweep, label = load_sweep("tiny-sweep.v1")
    assert sweep.base == "quickstart" and sweep.grid_size == 4
    assert yaml.safe_load(check_against_base(sweep, label))["train"]["steps"] == 100


# -- recovery (no training) ------------------------------------------------------------------------
def test_a_dead_workers_trial_is_failed_once_and_retried(tmp_path):
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    study.enqueue_trial({"x": 1.0}, user_attrs={"run_dir": "0000-x=1", "point": 0})
    trial = study.ask({"x": optuna.distributions.CategoricalDistribution([1.0, 2.0])})
    trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": int(dead.stdout),
                                   "started": None})
    trial.set_user_attr("heartbeat", time.time())
    alive = study.ask({"x": optuna.distributions.CategoricalDistribution([1.0, 2.0])})
    alive.set_user_attr("worker",
                        {"host": os.uname().nodename, "pid": os.getpid(), "started": None})
    alive.set_user_attr("heartbeat", time.time())

    assert recover(study) == [trial.number]  # the live worker's trial is left alone
    assert recover(study) == []  # a second recoverer finds nothing to do
    trials = study.get_trials()
    failed = trials[trial.number]
    assert failed.state == optuna.trial.TrialState.FAIL and "superseded" in failed.user_attrs
    retry = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(retry) == 1
    assert retry[0].user_attrs == {"run_dir": "0000-x=1", "point": 0, "retry_of": trial.number}
    assert retry[0].system_attrs["fixed_params"] == {"x": 1.0}
    # a stale heartbeat from another machine counts as dead too
    alive.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    assert recover(study, stale_after=3600) == []
    assert recover(study, stale_after=0) == [alive.number]


# -- pruning on the held-out metric logged during training -----------------------------------------
def one_point_sweep(tmp_path: Path, **fields) -> Path:
    path = tiny_sweep(tmp_path, **fields)
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {"weights.lambda_rec": [0.05]}
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_pruned_trial_stops_at_its_first_evaluation_and_its_run_resumes(tmp_path, monkeypatch):
    # a real Optuna pruner that prunes every report: any value is above -1e30
    monkeypatch.setattr(_optuna, "pruner",
                        lambda sweep: optuna.pruners.ThresholdPruner(upper=-1e30))
    path = one_point_sweep(tmp_path, pruner="median", budget={"train.steps": 40})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    (trial,) = study_of(out).get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    # eval_every defaults to 40 // 10 = 4: pruned at the first evaluation, step 4
    assert list(trial.intermediate_values) == [4] and trial.last_step == 4
    pruned = trial.user_attrs["pruned"]
    assert pruned["step"] == 4 and pruned["metric"] == "val_total"
    assert pruned["value"] == trial.intermediate_values[4] == trial.value
    run = out / "trials" / trial.user_attrs["run_dir"] / "seed-0"
    assert yaml.safe_load((run / "spec.yaml").read_text())["train"]["eval_every"] == 4
    assert trial.user_attrs["spec"]["train"]["eval_every"] == 4
    assert json.loads((run / "sweep.json").read_text())["pruned"] == pruned
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002.pt"]
    assert not (run / "summary.json").exists() and not (run / "heldout.json").exists()
    assert "PRUNED at step 4 of seed-0" in (out / "report.md").read_text()
    # the run directory is a stopped run: it resumes from its checkpoint to the end
    assert fit(resume=run).steps == 40
    assert json.loads((run / "summary.json").read_text())["steps"] == 40


def test_without_a_pruner_no_evaluation_is_forced(tmp_path):
    path = one_point_sweep(tmp_path, budget={"train.steps": 4})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    (trial,) = study_of(out).get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and not trial.intermediate_values
    run = out / "trials" / trial.user_attrs["run_dir"] / "seed-0"
    assert yaml.safe_load((run / "spec.yaml").read_text())["train"]["eval_every"] is None
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "total" in header and "val_" not in header


@pytest.mark.parametrize("metric, val", [
    ("heldout.total", "val_total"), ("heldout", "val_total"),
    ("heldout.unweighted.rec_x", "val_rec_x"), ("heldout.weighted.match_z2", "val_w_match_z2"),
    ("heldout.batches", None), ("fcd", None),
])
def test_which_metrics_are_pruned_during_training(metric, val):
    sweep, _ = load_sweep({"base": "quickstart", "params": GRID, "metric": metric,
                           "pruner": "median"})
    assert sweep.val_metric == val and sweep.prunes_in_training == (val is not None)
    assert not sweep.model_copy(update={"pruner": "none"}).prunes_in_training


def test_pruning_a_base_trained_by_epochs_needs_eval_every(tmp_path, capsys):
    path = one_point_sweep(tmp_path, pruner="median", budget={"train.steps": None,
                                                              "train.epochs": 1})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "budget: pruner median on heldout.total evaluates during training" in err, err


# -- real sweeps ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_workers_train_every_point_exactly_once(tmp_path, capsys):
    path, out = tiny_sweep(tmp_path), tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "trials: 4 COMPLETE" in printed and "best: trial" in printed
    study = study_of(out)
    trials = study.get_trials()
    assert len(trials) == 4 and complete_points(study) == ALL_POINTS
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers took trials
    for trial in trials:
        run = out / "trials" / trial.user_attrs["run_dir"] / "seed-0"
        assert (run / "spec.yaml").is_file()
        assert (run / "checkpoints" / "step-00000006.pt").is_file()
        recorded = json.loads((run / "sweep.json").read_text())
        assert recorded["params"] == trial.params
        assert recorded["value"] == pytest.approx(trial.value)
        spec = yaml.safe_load((run / "spec.yaml").read_text())
        weights = spec["objective"]["weights"]  # resolved specs: the weights in the objective
        assert weights["lambda_rec"] == trial.params["weights.lambda_rec"]
        assert trial.user_attrs["spec"]["objective"]["weights"] == weights
        heldout = json.loads((run / "heldout.json").read_text())
        assert heldout["total"] == pytest.approx(trial.value)
    report = (out / "report.md").read_text()
    assert "**Best point**" in report and (out / "heatmap.png").stat().st_size > 1000
    best = json.loads((out / "trials.json").read_text())["best"]
    assert best["value"] == pytest.approx(study.best_value)
    # the same command again: nothing left to train
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 0
    assert len(study_of(out).get_trials()) == 4


def _first_checkpointed_running_trial(out: Path, deadline: float):
    while time.time() < deadline:
        if (out / "journal.log").exists():
            for trial in study_of(out).get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                run = out / "trials" / trial.user_attrs.get("run_dir", "?") / "seed-0"
                if list(run.glob("checkpoints/step-*.pt")):
                    return trial
        time.sleep(0.2)
    raise AssertionError("no trial reached its first checkpoint in time")


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_continues_when_run_again(tmp_path):
    path, out = tiny_sweep(tmp_path, budget={"train.steps": 150,
                                             "train.checkpoint_every": 10}), tmp_path / "out"
    command = [sys.executable, "-m", "hierot", "sweep", str(path), "--out", str(out),
               "--workers", "2", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        killed = _first_checkpointed_running_trial(out, time.time() + 120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and both workers, mid-trial
        proc.wait()
    run = out / "trials" / killed.user_attrs["run_dir"] / "seed-0"
    assert not (run / "summary.json").exists()  # really stopped before the end
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2", "--threads", "1"]) == 0
    study = study_of(out)
    assert complete_points(study) == ALL_POINTS  # every point exactly one COMPLETE trial
    trials = study.get_trials()
    old = trials[killed.number]
    assert old.state == optuna.trial.TrialState.FAIL and "superseded" in old.user_attrs
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].user_attrs["run_dir"] == killed.user_attrs["run_dir"]  # resumed in place
    assert json.loads((run / "summary.json").read_text())["steps"] == 150


@pytest.mark.slow
def test_a_trial_that_raises_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    path, out = tiny_sweep(tmp_path), tmp_path / "out"
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {"data.n_test": [1, 64]}  # one test point: no held-out objective
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    trials = study_of(out).get_trials()
    states = {t.params["data.n_test"]: t.state for t in trials}
    assert states == {1: optuna.trial.TrialState.FAIL, 64: optuna.trial.TrialState.COMPLETE}
    failed = next(t for t in trials if t.params["data.n_test"] == 1)
    assert "the test split has 1 example(s)" in failed.user_attrs["error"]
    assert "the test split has 1 example(s)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_inline_grid_and_seeds(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    out = tmp_path / "inline"
    assert main(["sweep", str(spec), "--grid", "weights.lambda_rec=0.05,0.5", "--seeds", "2",
                 "--set", "train.steps=4", "--out", str(out)]) == 0
    trials = study_of(out).get_trials()
    assert sorted(t.params["weights.lambda_rec"] for t in trials) == [0.05, 0.5]
    for trial in trials:
        seeds = trial.user_attrs["seeds"]
        assert [s["seed"] for s in seeds] == [0, 1]
        assert trial.value == pytest.approx(sum(s["value"] for s in seeds) / 2)
        for s in seeds:
            run = out / "trials" / trial.user_attrs["run_dir"] / s["run_dir"]
            assert yaml.safe_load((run / "spec.yaml").read_text())["seed"] == s["seed"]
    assert (out / "metric-vs-weights.lambda_rec.png").is_file()
    # a different sweep into the same directory is refused, nothing touched
    assert main(["sweep", str(spec), "--grid", "weights.lambda_rec=0.1", "--seeds", "2",
                 "--set", "train.steps=4", "--out", str(out)]) == 2
    assert "holds a different sweep (params differ)" in capsys.readouterr().err


def test_heat_map_cells_get_the_digits_that_tell_them_apart():
    import numpy as np

    from hierot.sweeps.report import cell_labels

    grid = np.array([[25.41, 25.43], [25.4449, 25.4451]])
    labels = cell_labels(grid)
    assert len(set(labels.ravel())) == 4 and labels[0, 0] == "25.41"
    assert labels[1, 0] != labels[1, 1]  # 25.445, 25.445 at 5 digits
    assert cell_labels(np.array([[0.5, 12.0], [np.nan, 3.25]])).tolist() == [
        ["0.5", "12"], ["", "3.25"]]  # three digits where they suffice; no text for a gap


def test_a_report_says_where_each_trial_ran_and_when_it_is_partial(tmp_path, capsys):
    import socket

    url = f"sqlite:///{tmp_path / 'study.db'}"
    path, out = one_point_sweep(tmp_path, budget={"train.steps": 2}), tmp_path / "machine1"
    assert main(["sweep", str(path), "--out", str(out), "--storage", url]) == 0
    assert "partial" not in capsys.readouterr().out
    # another machine's trial, still running: its run directory is on that machine
    study = study_of(out, url)
    other = study.ask({"weights.lambda_rec": optuna.distributions.CategoricalDistribution([0.05])})
    for key, value in (("run_dir", "0000-lambda_rec=0.05"), ("sweep_dir", "/scratch/machine2"),
                       ("worker", {"host": "node7", "pid": 1}), ("heartbeat", time.time())):
        other.set_user_attr(key, value)
    assert main(["sweep", "--report", str(out), "--storage", url]) == 0
    records = {r["number"]: r for r in json.loads((out / "trials.json").read_text())["trials"]}
    mine = records[0]
    assert mine["here"] and mine["host"] == socket.gethostname()
    assert mine["sweep_dir"] == str(out.resolve())
    assert records[other.number] | {"here": False, "host": "node7",
                                    "sweep_dir": "/scratch/machine2"} == records[other.number]
    report = (out / "report.md").read_text()
    assert f"`{out.resolve()}` on {socket.gethostname()}; the run directories of 1 of the 2" \
        in report
    assert "the others ran elsewhere (1 on node7)" in report
    assert "elsewhere: `node7:/scratch/machine2/trials/0000-lambda_rec=0.05`" in report
    assert "| `trials/0000-lambda_rec=0.05` |" in report  # this machine's own, a local path
    assert "**partial**: 1 trial(s) still RUNNING (1 on node7), 0 WAITING" in report
    assert "(one seed: no sd)" in report and "mean ± sd" not in report


@pytest.fixture(scope="module")
def postgres_url():
    """``HIEROT_TEST_POSTGRES_URL``, else a throwaway server on loopback (tests/_postgres.py)."""
    if os.environ.get("HIEROT_TEST_POSTGRES_URL"):
        yield os.environ["HIEROT_TEST_POSTGRES_URL"]
        return
    pytest.importorskip("psycopg")
    import _postgres

    if _postgres.binaries() is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql), and "
                    "HIEROT_TEST_POSTGRES_URL is not set")
    with _postgres.throwaway_server() as url:
        yield url


@pytest.mark.slow
def test_two_machines_share_a_postgresql_study(tmp_path, postgres_url):
    url = postgres_url
    name = f"tiny-{os.getpid()}-{int(time.time())}"
    path = tiny_sweep(tmp_path, name=name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    machines = [tmp_path / f"machine{i}" for i in (1, 2)]
    commands = [  # two "machines": separate sweep directories, one database
        subprocess.Popen([sys.executable, "-m", "hierot", "sweep", str(path), "--out", str(out),
                          "--storage", url, "--threads", "1"], env=env)
        for out in machines
    ]
    try:
        assert [c.wait(timeout=300) for c in commands] == [0, 0]
    finally:
        for c in commands:
            c.kill()
    study = study_of(machines[0], url)
    assert complete_points(study) == ALL_POINTS
    assert not [t for t in study.get_trials() if "duplicate_of" not in t.user_attrs
                and t.state != optuna.trial.TrialState.COMPLETE]
    password = __import__("sqlalchemy.engine").engine.make_url(url).password
    if password:  # the password is never written to the sweep directory
        assert "***" in (machines[0] / "study.json").read_text()
        assert password not in (machines[0] / "study.json").read_text()
    # each machine's report: its own trials here, the other's named with the folder they are in
    for out in machines:
        assert main(["sweep", "--report", str(out), "--storage", url]) == 0
    records = [{r["number"]: r for r in json.loads((out / "trials.json").read_text())["trials"]
                if r["counted"]} for out in machines]
    assert records[0].keys() == records[1].keys() and len(records[0]) == 4
    for number in records[0]:
        ran_in = records[0][number]["sweep_dir"]
        assert ran_in in {str(m.resolve()) for m in machines}
        assert [r[number]["here"] for r in records] == [ran_in == str(m.resolve())
                                                        for m in machines]
        run_dir = records[0][number]["run_dir"]
        for out, recs in zip(machines, records):
            report = (out / "report.md").read_text()
            if not recs[number]["here"]:
                assert f"elsewhere: `{recs[number]['host']}:{ran_in}/trials/{run_dir}`" in report
            assert (out / "trials" / run_dir).is_dir() == recs[number]["here"]
    optuna.delete_study(study_name=name, storage=url)


@pytest.mark.slow
def test_tpe_over_a_range_with_the_median_pruner(tmp_path):
    path, out = tiny_sweep(tmp_path), tmp_path / "tpe"
    raw = yaml.safe_load(path.read_text())
    raw.update(params={"optimizer.lr": {"low": 1e-4, "high": 1e-1, "log": True},
                       "train.batch_size": {"choices": [16, 32]}},
               sampler="tpe", trials=4, seeds=2, pruner="median", budget={"train.steps": 3})
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    trials = study_of(out).get_trials()
    assert len(trials) == 4
    for trial in trials:
        assert 1e-4 <= trial.params["optimizer.lr"] <= 1e-1
        assert trial.params["train.batch_size"] in (16, 32)
        assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        # reported during training (eval_every defaults to 3 // 10 -> 1), seed 1 after seed 0
        assert min(trial.intermediate_values) == 1
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5, 6]
        else:
            assert trial.user_attrs["pruned"]["report_step"] == trial.last_step
    assert (out / "metric-vs-optimizer.lr.png").is_file()
    assert "| rank |" in (out / "report.md").read_text()
