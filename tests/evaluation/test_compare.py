"""``hierot compare``: grouping by spec, mean ± sd, intervals, Welch's t-test, Markdown and JSON.

Three real runs (two seeds of one spec, one with an override) are trained, evaluated and
compared through the command line; the statistics are checked against scipy on raw values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _fixtures import two_layers  # tests/_fixtures.py
from scipy import stats

import hierot
from hierot.cli import main
from hierot.evaluation.compare import mean_std, t_interval, verdict, welch_p
from hierot.evaluation.evaluator import evaluate

SPEC = {"data": {"name": "digits", "limit": 200}, "layers": two_layers(),
        "train": {"batch_size": 32, "steps": 2, "progress": False}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    made = {}
    for name, seed, overrides in [("base-s0", 0, []), ("base-s1", 1, []),
                                  ("wide-s0", 0, ["layers.0.latent_shape=[6]"])]:
        out = root / name
        hierot.fit(SPEC, out=out, overrides=[f"seed={seed}", *overrides])
        evaluate(out, samples=60, resamples=10, per_layer=False)
        made[name] = out
    return root, made


def test_statistics_match_scipy():
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.0, 9.0]
    sa, sb = mean_std(a), mean_std(b)
    assert sa["mean"] == pytest.approx(np.mean(a)) and sa["std"] == pytest.approx(np.std(a, ddof=1))
    expected = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert welch_p(sa, sb) == pytest.approx(expected)
    low, high = t_interval(sa)
    ci = stats.t.interval(0.95, len(a) - 1, loc=np.mean(a), scale=stats.sem(a))
    assert (low, high) == pytest.approx(ci)
    assert welch_p(mean_std([1.0]), sb) is None and t_interval(mean_std([1.0])) is None
    # better on a fidelity and a coverage metric, worse on none: wins on both
    far = {m: mean_std([0.9, 0.91]) for m in ("precision", "recall")}
    near = {m: mean_std([0.5, 0.52]) for m in ("precision", "recall")}
    v = verdict(far, near, {"precision": 1, "recall": 1}, ("precision",), ("recall",))
    assert v["precision"] == v["recall"] == "better" and v["wins_on_both"]
    assert not verdict(near, far, {"precision": 1, "recall": 1}, ("precision",),
                       ("recall",))["wins_on_both"]


def test_compare_groups_seeds_and_tests_against_the_baseline(runs, tmp_path, capsys):
    root, made = runs
    md, js = tmp_path / "c.md", tmp_path / "c.json"
    assert main(["compare", str(root / "*"), "--baseline", str(made["wide-s0"]),
                 "--out", str(md), "--json", str(js)]) == 0
    report = json.loads(js.read_text())
    groups = report["groups"]
    assert len(groups) == 2
    base = report["baseline"]
    assert base.startswith("layers.0.latent_shape=[6]") and len(groups[base]["runs"]) == 1
    (other,) = [g for label, g in groups.items() if label != base]
    assert sorted(other["runs"]) == sorted(str(made[n]) for n in ("base-s0", "base-s1"))
    values = [json.loads((made[n] / "eval.json").read_text())["sample_quality"]["fcd"]
              for n in ("base-s0", "base-s1")]
    fcd = other["metrics"]["fcd"]
    assert fcd["mean"] == pytest.approx(np.mean(values))
    assert fcd["std"] == pytest.approx(np.std(values, ddof=1))
    assert other["against_baseline"]["fcd"] in ("better", "worse", "tie")
    single = groups[base]["metrics"]["precision"]  # one run: its own bootstrap interval
    written = json.loads((made["wide-s0"] / "eval.json").read_text())
    assert single["interval"] == written["sample_quality"]["samplers"]["prior"]["ancestral"][
        "intervals"]["precision"]
    text = md.read_text()
    assert "(baseline)" in text and "| fcd |" in text
    assert capsys.readouterr().out.startswith("Runs grouped by spec")


def test_compare_bad_input(runs, tmp_path, capsys):
    root, _made = runs
    assert main(["compare", str(tmp_path / "nothing-*")]) == 2
    assert "matches no run directory" in capsys.readouterr().err
    empty = tmp_path / "not-evaluated"
    empty.mkdir()
    assert main(["compare", str(empty)]) == 2
    assert "no eval.json" in capsys.readouterr().err
    assert main(["compare", str(root / "*"), "--baseline", "7"]) == 2
    assert "--baseline '7' is no group" in capsys.readouterr().err
    assert main(["compare", str(root / "*"), "--out", str(tmp_path / "c.txt")]) == 2
    assert "must end in .md" in capsys.readouterr().err
    assert not (tmp_path / "c.txt").exists()


def test_compare_is_in_the_api(runs):
    root, _ = runs
    report = hierot.api.compare([root / "base-*"])
    assert list(report["groups"]) == ["all runs"] and report["warnings"] == []


def _result(values: dict[str, float], version: str = "hierot-eval/2", sampler: str = "prior"):
    """A synthetic ``eval.json``: one sampler's ancestral block with ``values`` and intervals."""
    block = {**values, "intervals": {m: [v - 0.01, v + 0.01] for m, v in values.items()}}
    protocol = {"version": version, "samples": 100, "features": {"name": "classifier",
                                                                  "sha256": "ab" * 32}}
    return {"sample_quality": {"protocol": protocol, "samplers": {sampler: {"ancestral": block}}}}


def _seeds(**columns: list[float]) -> list[dict]:
    """One synthetic result per seed from per-metric columns of values."""
    count = len(next(iter(columns.values())))
    return [_result({m: v[i] for m, v in columns.items()}) for i in range(count)]


def test_compare_results_gives_known_verdicts_on_synthetic_evaluations():
    from hierot.evaluation.compare import compare_results

    paper = _seeds(fcd=[30.0, 32.0, 34.0], kid=[0.02, 0.03, 0.04], precision=[0.5, 0.52, 0.54],
                   recall=[0.3, 0.31, 0.32], density=[0.8, 0.9, 1.0], coverage=[0.4, 0.5, 0.6])
    z8 = _seeds(fcd=[20.0, 21.0, 22.0], kid=[0.025, 0.03, 0.035], precision=[0.7, 0.71, 0.72],
                recall=[0.5, 0.5, 0.5], density=[0.7, 0.9, 1.1], coverage=[0.2, 0.25, 0.3])
    report = compare_results({"paper": paper, "z8": z8, "one": [_result({"fcd": 50.0})]},
                             baseline="paper")
    assert report["baseline"] == "paper" and report["warnings"] == []
    assert report["protocols"] == ["hierot-eval/2, classifier abababababab, N = 100"]
    z8_group = report["groups"]["z8"]
    precision = z8_group["metrics"]["precision"]
    assert precision["mean"] == pytest.approx(0.71) and precision["std"] == pytest.approx(0.01)
    ci = stats.t.interval(0.95, 2, loc=0.71, scale=0.01 / np.sqrt(3))
    assert precision["interval"] == pytest.approx(ci)
    v = z8_group["against_baseline"]
    # fcd: 21 ± 1 against 32 ± 2, lower is better; precision 0.71 ± 0.01 against 0.52 ± 0.02;
    # kid and density: the same means; coverage 0.25 ± 0.05 against 0.5 ± 0.1: worse
    assert (v["fcd"], v["precision"], v["recall"]) == ("better", "better", "better")
    assert (v["kid"], v["density"], v["coverage"]) == ("tie", "tie", "worse")
    assert not v["wins_on_both"]  # worse on coverage
    assert v["welch_p"]["precision"] == pytest.approx(stats.ttest_ind(
        [0.7, 0.71, 0.72], [0.5, 0.52, 0.54], equal_var=False).pvalue)
    single = report["groups"]["one"]["metrics"]
    assert single["fcd"]["interval"] == [49.99, 50.01] and single["precision"]["mean"] is None
    assert report["groups"]["one"]["against_baseline"]["precision"] == "-"
    assert "against_baseline" not in report["groups"]["paper"]

    # without the coverage loss, z8 wins on both; the baseline may be given by its number
    z8_wins = _seeds(precision=[0.7, 0.71, 0.72], recall=[0.5, 0.5, 0.5],
                     density=[0.8, 0.9, 1.0], coverage=[0.4, 0.5, 0.6], fcd=[20.0, 21.0, 22.0],
                     kid=[0.02, 0.03, 0.04])
    again = compare_results({"z8": z8_wins, "paper": paper}, baseline="2")
    assert again["baseline"] == "paper" and again["groups"]["z8"]["against_baseline"][
        "wins_on_both"]


def test_compare_results_bad_baseline_sampler_and_mixed_protocols():
    from hierot.errors import HierotError
    from hierot.evaluation.compare import compare_results

    groups = {"a": [_result({"fcd": 1.0})], "b": [_result({"fcd": 2.0}, "hierot-eval/1")]}
    with pytest.raises(HierotError, match=r"--baseline 'c' is no group.*\['a', 'b'\]"):
        compare_results(groups, baseline="c")
    with pytest.raises(HierotError, match=r"--sampler 'gmm' is not in .*there: \['prior'\]"):
        compare_results(groups, sampler="gmm")
    report = compare_results(groups)
    assert report["baseline"] == "a" and "2 protocols, not comparable" in report["warnings"][0]


def test_runs_that_measured_the_same_thing_keep_the_bootstrap_interval():
    """The held-out data of every seed give one value: a Student-t interval of width 0 would
    claim a certainty the sampling does not have, so the run's own bootstrap interval stands."""
    from hierot.evaluation.compare import summarise_metric, t_interval

    same = [{"fcd": 4.0, "intervals": {"fcd": [1.2, 8.9]}}] * 3
    assert summarise_metric(same, "fcd")["interval"] == [1.2, 8.9]
    spread = [{"fcd": v, "intervals": {"fcd": [0.0, 9.0]}} for v in (3.0, 4.0, 5.0)]
    stat = summarise_metric(spread, "fcd")
    assert stat["interval"] == t_interval(stat) and stat["interval"][0] < 4.0 < stat["interval"][1]
