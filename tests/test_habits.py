"""What the lint and type-checking work (issue 25, part 6) made explicit: summaries of wrapped
first sentences, typed sub-command arguments, narrowed optional state that fails clearly."""

from __future__ import annotations

import argparse

import pytest
import torch

import hierot.registry as registry_module
from hierot import HierotError, fit
from hierot.cli._command import COMMANDS, command
from hierot.distributions import Gaussian
from hierot.objectives.base import gaussian_kl
from hierot.registry import ALL, Registry, samplers
from hierot.run import step_of


def test_summary_is_the_first_paragraph_on_one_line():
    registry = Registry("thing")

    def wrapped(options):
        """A first sentence long enough that it wraps
        onto a second line.

        Details that are not part of the summary.
        """

    registry.add("wrapped", wrapped)
    registry.add("bare", lambda options: None)
    assert registry.get("wrapped").summary == (
        "A first sentence long enough that it wraps onto a second line.")
    assert registry.get("bare").summary == ""


def test_every_registry_is_exported():
    assert set(ALL) <= set(registry_module.__all__)
    assert all(hasattr(registry_module, name) for name in registry_module.__all__)


def test_command_takes_its_arguments_function():
    def run(args: argparse.Namespace) -> int:
        return 0

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--flag")

    def old_style(args: argparse.Namespace) -> int:
        return 1

    old_style.arguments = arguments  # type: ignore[attr-defined]  # hierot 0.1's way
    try:
        command("habits-test", "a test command", arguments=arguments)(run)
        command("habits-old", "an old-style command")(old_style)
        command("habits-none", "no arguments")(run)
        assert COMMANDS["habits-test"] == (arguments, run, "a test command")
        assert COMMANDS["habits-old"][0] is arguments
        parser = argparse.ArgumentParser()
        COMMANDS["habits-none"][0](parser)  # adds nothing
        assert parser.parse_args([]) == argparse.Namespace()
    finally:
        for name in ("habits-test", "habits-old", "habits-none"):
            COMMANDS.pop(name, None)


def test_a_point_mass_has_no_log_variance_for_a_density():
    mean = torch.zeros(2, 3)
    assert torch.equal(Gaussian(mean, torch.ones(2, 3)).stochastic_log_var, torch.ones(2, 3))
    with pytest.raises(ValueError, match="point-mass"):  # KL(q || p) of a deterministic head
        gaussian_kl(Gaussian(mean), Gaussian(mean, torch.zeros(2, 3)))


@pytest.mark.parametrize("name", ["prior", "gmm", "empirical"])
def test_a_sampler_refuses_to_sample_before_fit(name):
    sampler = samplers.build(samplers.make_options(name))
    with pytest.raises(RuntimeError, match="before fit"):
        sampler.sample(4, torch.Generator().manual_seed(0))


def test_step_of_reads_a_checkpoint_name_and_names_a_bad_one(tmp_path):
    assert step_of(tmp_path / "step-00000100.pt") == 100
    with pytest.raises(ValueError, match="notes.txt is not a checkpoint"):
        step_of(tmp_path / "notes.txt")


def test_fit_without_spec_or_resume_is_a_clear_error():
    with pytest.raises(HierotError, match="fit: give a spec"):
        fit(save=False)
