"""Sample counts against divergences: refused at validation where a divergence cannot run them
(naming the fields and the scalable alternative), and trained where the online backend can."""

from __future__ import annotations

import csv
import math

import pytest
import yaml
from _fixtures import two_layers  # tests/_fixtures.py

import hierot
from hierot.cli import main
from hierot.errors import SpecError

TINY = {
    "data": {"name": "digits"},
    "layers": two_layers(),
    "train": {"batch_size": 32, "steps": 3, "log_every": 1, "checkpoint_every": 3,
              "progress": False},
}


def spec(*overrides: str):
    return hierot.load_spec(TINY, ["device=cpu", *overrides])


@pytest.mark.parametrize(
    "divergence, prior, message",
    [
        ("{name: wasserstein}", 10_000, "up to 8192 samples a side.*sinkhorn with backend: online"),
        ("{name: mmd, backend: tensorized}", 70_000, "backend: online"),
        ("{name: sinkhorn, backend: pot}", 2**28, "use backend: online"),
        ("{name: sliced-wasserstein, n_projections: 65536}", 20_000, "lower n_projections"),
    ],
)
def test_sizes_a_divergence_cannot_run_are_refused_at_validation(divergence, prior, message):
    with pytest.raises(SpecError, match=message) as info:
        spec(f"divergence={divergence}", f"train.prior_samples={prior}")
    assert "divergence: 32 samples (train.batch_size) against" in str(info.value)
    assert f"{prior} (train.prior_samples)" in str(info.value)


def test_the_scalable_backends_accept_those_sizes():
    for divergence in ("{name: mmd}", "{name: mmd, backend: online}",
                       "{name: sinkhorn, backend: online}", "{name: sinkhorn, backend: auto}"):
        spec(f"divergence={divergence}", "train.prior_samples=70000")
    spec("divergence={name: wasserstein}", "train.prior_samples=8192")


def test_cli_refuses_with_exit_status_2_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**TINY, "divergence": {"name": "wasserstein"}}))
    out = tmp_path / "run"
    code = main(["train", str(path), "--set", "train.prior_samples=9000", "--out", str(out)])
    assert code == 2
    assert "sinkhorn with backend: online" in capsys.readouterr().err
    assert not out.exists()


def test_many_prior_samples_train_with_the_online_backend(tmp_path):
    # 4,096 prior samples against a batch of 32: auto picks online (n + m > tile_size = 256)
    run = tmp_path / "r"
    hierot.fit(spec("train.prior_samples=4096", "divergence={name: mmd, tile_size: 256}"), out=run)
    resolved = yaml.safe_load((run / "spec.yaml").read_text())
    assert resolved["divergence"]["backend"] == "auto"
    assert resolved["divergence"]["tile_size"] == 256
    assert resolved["train"]["prior_samples"] == 4096
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert all(math.isfinite(float(row["total"])) for row in rows)


def test_prior_pairs_changes_the_reported_divergence_never_the_training(tmp_path):
    """The prior-prior term carries no gradient: an incomplete U-statistic over it (``prior_pairs``)
    trains bit for bit as the complete one and changes only the logged divergence and total."""
    import torch

    common = ["train.prior_samples=1024", "divergence={name: mmd, tile_size: 256}"]
    runs = {}
    for label, extra in (("complete", []), ("incomplete", ["divergence.prior_pairs=2048"])):
        runs[label] = tmp_path / label
        hierot.fit(spec(*common, *extra), out=runs[label])
    from hierot.evaluation import load_run

    model = {label: load_run(run).model.state_dict() for label, run in runs.items()}
    assert model["complete"].keys() == model["incomplete"].keys()
    assert all(torch.equal(model["complete"][k], model["incomplete"][k])
               for k in model["complete"])
    rows = {}
    for label, run in runs.items():
        with open(run / "metrics.csv") as f:
            rows[label] = list(csv.DictReader(f))
    last = rows["complete"][-1], rows["incomplete"][-1]
    assert last[0]["rec_x"] == last[1]["rec_x"] and last[0]["grad_norm"] == last[1]["grad_norm"]
    top = "match_z2"  # the top divergence of the two-layer spec
    assert last[0][top] != last[1][top]
    assert float(last[1][top]) == pytest.approx(float(last[0][top]), abs=0.05)
