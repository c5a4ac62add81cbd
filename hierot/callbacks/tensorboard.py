"""TensorBoard: scalars and figures as event files in ``RUN/tensorboard``.

View with ``tensorboard --logdir runs`` (every run directory under ``runs`` side by side).
Terms are logged as ``unweighted/<term>``, ``weighted/<term>`` and ``total``; held-out terms as
``val_unweighted/<term>``, ``val_weighted/<term>`` and ``val_total``; and ``lr``, ``step_time``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from hierot.callbacks._base import Callback, figures, require_package
from hierot.registry import ComponentOptions, callbacks


def tag(name: str) -> str:
    """The TensorBoard tag of a metric name (``w_rec_x`` -> ``weighted/rec_x``)."""
    prefix = ""
    if name.startswith("val_"):
        prefix, name = "val_", name[4:]
    if name.startswith("w_"):
        return f"{prefix}weighted/{name[2:]}"
    if name in ("total", "lr", "step_time", "epoch"):
        return prefix + name
    return f"{prefix}unweighted/{name}"


class TensorBoardOptions(ComponentOptions):
    """Options of ``tensorboard`` (:class:`TensorBoard`)."""

    figures: bool = Field(True, description="log the figures of hierot plot when training ends")
    flush_secs: int = Field(30, gt=0, description="seconds between writes of the event file")

    @model_validator(mode="after")
    def _installed(self) -> Any:
        require_package("tensorboard", "tensorboard")
        return self


@callbacks.register("tensorboard", options=TensorBoardOptions)
class TensorBoard(Callback):
    """Scalars and, at the end, the figures of ``hierot plot``, in TensorBoard event files."""

    def __init__(self, options: TensorBoardOptions, *, run_dir, spec=None):
        from torch.utils.tensorboard import SummaryWriter

        self.options, self.run_dir = options, run_dir
        self.log_dir = run_dir.path / "tensorboard"
        self.writer = SummaryWriter(str(self.log_dir), flush_secs=options.flush_secs)

    def on_train_start(self, spec, step: int) -> None:
        if step == 0:
            from hierot.spec.loading import dump_spec

            self.writer.add_text("spec", "```yaml\n" + dump_spec(spec) + "\n```", 0)

    def _scalars(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(tag(name), value, step)

    on_log = _scalars
    on_eval = _scalars

    def on_train_end(self, result) -> None:
        if self.options.figures:
            import numpy as np
            from PIL import Image

            for path in figures(self.run_dir):
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(f"figures/{path.stem}", pixels, result.steps,
                                      dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
