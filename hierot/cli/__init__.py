"""The ``hierot`` command line (see :mod:`hierot.cli.commands`)."""

from hierot.cli.commands import main, make_parser

__all__ = ["main", "make_parser"]
