"""hierot.spec._messages: errors in hierot's words, never the validator's internals (issue 27)."""

from __future__ import annotations

import pytest

from hierot.cli import main

INTERNALS = ("literal[", "tuple[", "constrained-", "after validation", "Input tag",
             "expected tags")


@pytest.mark.parametrize("override, line", [
    ("layers.0.latent_shape=[-4]",
     "layers.0.latent_shape.0: Input should be greater than or equal to 1"),
    ("layers.0.latent_shape=[]", "layers.0.latent_shape: needs at least 1 item, got 0"),
    ("divergence.scales=wea", "divergence.scales: expected 'wae' or a list of numbers; got 'wea'"),
    ("divergence.scales=[a]", ("divergence.scales: expected 'wae' or a list of numbers; got "
                               "['a'] (item 0: Input should be a valid number)")),
    ("callbacks=[{name: mlflw}]", ("callbacks.0.name: unknown callback 'mlflw'; did you mean "
                                   "'mlflow'? Valid: mlflow, tensorboard, wandb")),
    ("optimizer.schedule={name: cosin}", ("optimizer.schedule.name: unknown lr schedule 'cosin'; "
                                          "did you mean 'cosine'? Valid: ")),
    ("weights={schedule: paper-mnst}", ("objective.weights.schedule: unknown lambda schedule "
                                        "'paper-mnst'; did you mean 'paper-mnist'")),
    ("train..steps=5", "--set train..steps=5: 'train..steps' has an empty key"),
    (".steps=5", "has an empty key"),
])
def test_messages_name_the_field_in_plain_words(capsys, override, line):
    assert main(["validate", "quickstart", "--set", override]) == 2
    err = capsys.readouterr().err
    assert line in err, err
    assert not any(word in err for word in INTERNALS), err
    assert err.count("\n  ") == 1, err  # one line per mistake
