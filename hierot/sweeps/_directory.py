"""The sweep directory's own files: what a worker or the report reads back.

::

    DIR/sweep.yaml     the resolved sweep (running the same command again must match it)
    DIR/base.yaml      the resolved base spec, budget applied (every trial starts from it)
    DIR/study.json     the study's name and storage (a database URL without its password)
    DIR/journal.log    the Optuna journal (the default storage)
    DIR/trials/        one folder per point (see :mod:`hierot.sweeps._trial`)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hierot._yaml import parse_yaml
from hierot.errors import HierotError
from hierot.sweeps.schema import SweepSpec

SWEEP_YAML, BASE_YAML, STUDY_JSON = "sweep.yaml", "base.yaml", "study.json"


def read_sweep_dir(sweep_dir: Path) -> tuple[SweepSpec, str]:
    """The resolved sweep and base spec YAML kept in a sweep directory."""
    file = Path(sweep_dir) / SWEEP_YAML
    if not file.is_file():
        raise HierotError(f"{sweep_dir} is not a sweep directory (no {SWEEP_YAML} in it)")
    sweep = SweepSpec.model_validate(parse_yaml(file.read_text()))
    return sweep, (Path(sweep_dir) / BASE_YAML).read_text()


def study_info(sweep_dir: Path) -> dict[str, Any]:
    """``study.json``: the study's name and (masked) storage; empty when not written yet."""
    file = Path(sweep_dir) / STUDY_JSON
    return json.loads(file.read_text()) if file.is_file() else {}
