"""docs/cli.md says what the command line does: `list`'s kinds, the mistyped-command example."""

from __future__ import annotations

import re
from pathlib import Path

from hierot.cli import main
from hierot.registry import ALL

CLI_DOCS = Path(__file__).parents[2] / "docs" / "cli.md"


def test_the_list_synopsis_names_every_kind():
    (synopsis,) = re.findall(r"^hierot list \[([^\]]*)\]$", CLI_DOCS.read_text(), re.MULTILINE)
    assert sorted(re.sub(r"\s+", "", synopsis).split("|")) == sorted(ALL)  # it may wrap


def test_the_mistyped_command_example_is_what_the_command_prints(capsys):
    docs = CLI_DOCS.read_text()
    example = docs.split("$ hierot trian quickstart\n", 1)[1].split("\n```", 1)[0]
    assert main(["trian", "quickstart"]) == 2
    assert capsys.readouterr().err.strip() == example.strip()
