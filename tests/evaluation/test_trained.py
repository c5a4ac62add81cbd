"""hierot.evaluation.trained: a run loaded at its best checkpoint (``--checkpoint best``), and
the error when it has none."""

from __future__ import annotations

import pytest
import torch
from _fixtures import train_spec  # tests/_fixtures.py

import hierot


def test_best_checkpoint_loads_by_name_and_its_absence_is_named(tmp_path, capsys):
    from hierot.cli import main
    from hierot.evaluation import load_run

    hierot.fit(train_spec("cpu", "train.eval_every=2", "train.log_every=3"), out=tmp_path / "r")
    best = torch.load(tmp_path / "r" / "checkpoints" / "best.pt", weights_only=True)
    run = load_run(tmp_path / "r", "best")
    assert (run.step, run.checkpoint.name) == (best["step"], "best.pt")
    for name, value in run.model.state_dict().items():
        torch.testing.assert_close(value, best["model"][name], rtol=0, atol=0, msg=name)
    assert main(["sample", str(tmp_path / "r"), "-n", "4", "--out", str(tmp_path / "s.pt"),
                 "--checkpoint", "best"]) == 0
    assert f"of step {best['step']}" in capsys.readouterr().out

    hierot.fit(train_spec("cpu"), out=tmp_path / "plain")  # no train.eval_every: no best.pt
    assert main(["sample", str(tmp_path / "plain"), "-n", "4", "--out", str(tmp_path / "t.pt"),
                 "--checkpoint", "best"]) == 2
    err = capsys.readouterr().err
    assert "holds no best.pt" in err and "train.eval_every" in err and "Traceback" not in err
    assert not (tmp_path / "t.pt").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["sample", str(tmp_path / "plain"), "-n", "4", "--out", str(tmp_path / "t.pt"),
              "--checkpoint", "last"])
    assert exit_.value.code == 2
    assert "'last' is neither a step number nor 'best'" in capsys.readouterr().err
