"""Property: a mutated valid spec is refused with a clean error naming a field, or trains.

Hypothesis mutates a small valid spec (set a field to an odd value, delete it, or add an unknown
one, up to three times) and requires one of:

- a :class:`~hierot.errors.SpecError` whose every line is ``path.to.field: message``;
- another clean :class:`~hierot.errors.HierotError` raised while building (a data set that is not
  installed, a batch larger than the data);
- a spec that builds and trains one step into a run directory with every logged term finite and
  a finite checkpoint -- or stops with :class:`~hierot.errors.NonFiniteLossError` naming the step
  and the term or parameter (``lr: 1.0e+300`` is a valid spec), having saved nothing non-finite.

Anything else (a traceback from deep inside torch, pydantic or the builder) fails the test.
The default run tries ``HIEROT_FUZZ_EXAMPLES`` cases (200), derandomised so CI is repeatable;
``HIEROT_FUZZ_EXAMPLES=5000 python -m pytest tests/spec/test_fuzz.py --hypothesis-show-statistics``
explores afresh and tallies the outcomes (see ``docs/rundir.md`` for the last long run).
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hierot
from hierot.errors import HierotError, NonFiniteLossError, SpecError
from hierot.run import Run
from hierot.spec.loading import apply_overrides, load_spec

EXAMPLES = int(os.environ.get("HIEROT_FUZZ_EXAMPLES", "200"))
LONG = "HIEROT_FUZZ_EXAMPLES" in os.environ

BASE = {
    "seed": 0,
    "data": {"name": "toy-hierarchy", "n_train": 32, "n_test": 8, "dims": [6, 3, 2]},
    "layers": [
        {"latent_shape": [3], "encoder": {"name": "mlp", "hidden": [4]},
         "decoder": {"name": "mlp", "hidden": [4]}},
        {"latent_shape": [2], "encoder": {"name": "mlp", "hidden": [4, 4]},
         "decoder": {"name": "mlp", "hidden": [4]}, "cost": {"name": "l2sq"}},
    ],
    "divergence": {"name": "mmd"},
    "penalties": [{"name": "abs-log-var"}],
    "objective": {"name": "stacked-wae", "weights": {"schedule": "paper-mnist", "lambda_rec": 0.05,
                                                     "lambda_match": 0.0001}},
    "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
    "train": {"batch_size": 8, "steps": 1, "log_every": 1, "checkpoint_every": 1,
              "prior_samples": 8, "progress": False},
}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into ``node``: mappings' keys and lists' indices, leaves and containers."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


PATHS = _paths(BASE)
NAMES = ["mlp", "resnet", "mmd", "sinkhorn", "wasserstein", "sliced-wasserstein", "l2sq", "l1",
         "toy-hierarchy", "digits", "mnist", "svhn", "abs-log-var", "paper-svhn", "explicit",
         "stacked", "flat", "sgd", "rmsprop", "gaussian", "deterministic", "nope"]
HUGE = st.one_of(
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 3.5e38, -3.5e38, 1e200, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False),  # every finite float, the extremes included
)
"""Huge finite floats: ``ratio ** i`` overflowed (OverflowError) where ``ratio * ratio``
gives inf."""
SCALARS = st.one_of(
    st.sampled_from([0, 1, 2, 3, -1, -5, 2**31, 2**63, 2**70, 0.5, -0.5, 1e-300, 1e300,
                     math.inf, -math.inf, math.nan, True, False, None, "", "x", "5", "1e3"]),
    st.sampled_from(NAMES),
    st.integers(-3, 48),
    st.floats(-10, 10, allow_nan=False),
    HUGE,
)
EXPONENT_TEXT = st.builds(
    lambda sign, mantissa, e, exp: f"{sign}{mantissa}{e}{exp}",
    st.sampled_from(["", "-", "+"]),
    st.sampled_from(["1", "2", "1.0", "1.5", ".5", "9"]),
    st.sampled_from(["e", "E"]),
    st.one_of(st.integers(-400, 400), st.sampled_from(["+308", "-3", "+0", "-0"])),
)
"""Numbers as people write them in YAML and ``--set``: ``1e-3``, ``-2E5``, ``1.0e+308``,
``1e400``."""
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(st.integers(-2, 16), st.sampled_from([True, 0.5, math.nan, "a"])),
             max_size=3),
    st.fixed_dictionaries({"name": st.sampled_from(NAMES)}),
    st.dictionaries(st.sampled_from(["name", "hidden", "blur", "p", "scales", "x"]), SCALARS,
                    max_size=2),
)
MUTATION = st.one_of(
    st.tuples(st.sampled_from(["set", "delete", "add"]), st.sampled_from(PATHS), VALUES),
    st.tuples(st.just("override"), st.sampled_from(PATHS), EXPONENT_TEXT),  # through --set
)
FIELD_LINE = re.compile(r"^(<spec>|[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*): \S")


def mutate(raw: dict, mutations: list[tuple]) -> dict:
    raw = copy.deepcopy(raw)
    for action, path, value in mutations:
        if action == "override":  # as `--set a.b=1e-3` does: the text read as YAML
            try:
                raw = apply_overrides(raw, [f"{'.'.join(map(str, path))}={value}"])
            except SpecError:
                continue  # an earlier mutation made the path go through a non-mapping
            continue
        node = raw
        try:
            for key in path[:-1]:
                node = node[key]
            last = path[-1]
            if action == "set":
                node[last] = value
            elif action == "delete":
                del node[last]
            elif isinstance(node[last], dict):
                node[last]["surplus"] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return raw


def train_one_step(spec: hierot.Spec) -> str:
    """Build and train ``spec`` for its first step; check that nothing non-finite was kept.

    Returns the outcome, for hypothesis's statistics."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        try:
            result = hierot.fit(spec, out=out, overrides=["train.steps=1"])
        except NonFiniteLossError as exc:
            assert re.match(r"step 1: non-finite (objective term|gradient|parameter|optimiser)",
                            str(exc)), exc
            assert not Run(out).checkpoint_files()
            return "stopped by the non-finite guard"
        except HierotError as exc:  # clean: a data set not installed, batch > data, ...
            assert "Traceback" not in str(exc) and str(exc).strip()
            return f"clean error while building: {type(exc).__name__}"
        assert all(math.isfinite(v) for v in result.last_metrics.values()), result.last_metrics
        state = Run(out).load_checkpoint()
        assert all(bool(torch.isfinite(t).all()) for t in state["model"].values()
                   if t.is_floating_point())
        return "trained one step"


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_specs_are_refused_cleanly_or_train(mutations):
    torch.set_num_threads(1)
    raw = mutate(BASE, mutations)
    try:
        spec = load_spec(raw)
    except SpecError as exc:
        assert exc.lines, exc
        for line in exc.lines:
            assert FIELD_LINE.match(line), line
        event("SpecError naming the field(s)")
        return
    event(train_one_step(spec))


def test_the_base_spec_trains():
    """The property is not vacuous: the unmutated spec trains."""
    assert train_one_step(load_spec(BASE)) == "trained one step"


@pytest.mark.parametrize("mutations", [
    [("set", ("layers", 0, "encoder", "hidden"), [-5, 32])],
    [("set", ("optimizer", "betas"), [0.9, 1.5])],
    [("set", ("seed",), 2**70)],
    [("set", ("optimizer", "lr"), math.inf)],
    [("set", ("train", "prior_samples"), 1)],
    [("set", ("penalties", 0), {"name": "abs-log-var", "ratio": 1e308})],
    [("override", ("optimizer", "lr"), "-2E5")],
])
def test_the_measured_faults_are_spec_errors(mutations):
    """The cases that once reached training and failed there are refused at validation."""
    with pytest.raises(SpecError):
        load_spec(mutate(BASE, mutations))


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("-2E5", -2e5), ("1.0e+308", 1e308)])
def test_overrides_in_exponent_notation_are_numbers(text, value):
    assert mutate(BASE, [("override", ("optimizer", "lr"), text)])["optimizer"]["lr"] == value
