"""The run directory, owned by one object: :class:`Run`.

Training and evaluation both stand on this layer: it creates a run (``spec.yaml``,
``environment.json``, ``origin.json``), resumes one (what a resume may change, the newest intact
checkpoint, ``changes.jsonl``), initialises a new run from another's weights, and reads and
writes every file of the directory atomically, checkpoints in one format.

::

    RUN/spec.yaml              the resolved spec (every default filled in)
    RUN/metrics.csv            every objective term per logged step, plus wall time
    RUN/checkpoints/step-*.pt  model, optimiser, data order and RNG state (atomic writes)
    RUN/checkpoints/best.pt    the best held-out evaluation so far (train.eval_every)
    RUN/summary.json           final numbers, written when training ends
    RUN/environment.json       versions, device, plug-ins
    RUN/changes.jsonl          changes made on resume (budget, cadence), with their step
    RUN/origin.json            the run whose weights started this one (``--init-from``)
    RUN/eval.json              ``hierot eval``'s metrics
    RUN/heldout.json           a sweep trial's objective on the test split (``hierot sweep``)
    RUN/figures/, report.md    ``hierot plot``'s figures and one-page report

================= ==============================================================================
``_layout``       the file names above: the one place that knows them
``_run``          :class:`Run`: create, resume, initialise; checkpoints, metrics, summary
``_checkpoint``   the checkpoint format: :data:`CHECKPOINT_FORMAT`, safe reading, named errors
``_changes``      what a resume may change (:data:`RESUMABLE`), ``changes.jsonl``
``_spec``         ``spec.yaml`` read back: :func:`upgrade`, the one converter of older forms
``_metrics``      ``metrics.csv`` written and read back (a damaged file named)
``_atomic``       atomic writes (the user's umask; a failed write names its file)
``_environment``  ``environment.json``: versions, machine, plug-ins
``_device``       the spec's ``device`` resolved on this machine
``_summary``      the first and last logged values, as ``hierot train`` prints them
================= ==============================================================================

Checkpoints hold tensors, numbers and strings only and load with
``torch.load(path, weights_only=True)``; one that cannot be read is reported by name with what
is wrong (:class:`~hierot.errors.CheckpointError`). See ``docs/rundir.md``.
"""

from hierot.run import _layout as layout
from hierot.run._atomic import atomic_open, atomic_torch_save, atomic_write_text
from hierot.run._changes import RESUMABLE, Change, check_resume, spec_changes
from hierot.run._checkpoint import (
    CHECKPOINT_FORMAT,
    REQUIRED_KEYS,
    check_architecture,
    check_state,
    read_checkpoint,
)
from hierot.run._device import resolve_device
from hierot.run._environment import environment
from hierot.run._layout import step_of
from hierot.run._metrics import MetricsFileError, MetricsWriter, read_metrics_file
from hierot.run._run import Run, ensure_writable
from hierot.run._spec import load_run_spec, recorded_plugins, upgrade
from hierot.run._summary import summary_table

__all__ = [
    "CHECKPOINT_FORMAT", "REQUIRED_KEYS", "RESUMABLE", "Change", "MetricsFileError",
    "MetricsWriter", "Run", "atomic_open", "atomic_torch_save", "atomic_write_text",
    "check_architecture", "check_resume", "check_state", "ensure_writable", "environment",
    "layout", "load_run_spec", "read_checkpoint", "read_metrics_file", "recorded_plugins",
    "resolve_device", "spec_changes", "step_of", "summary_table", "upgrade",
]
