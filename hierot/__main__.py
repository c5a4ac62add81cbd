"""``python -m hierot`` (and ``torchrun -m hierot``) runs the CLI."""

import sys

from hierot.cli import main

sys.exit(main())
