"""The training loop. It only trains: the spec is already valid, the modules already built
(:func:`hierot.builder.build`) and everything the loop uses too
(:func:`hierot.training.parts.build_training`); the run directory is a :class:`hierot.run.Run`.

One step: take the next global batch of indices (this rank's share of it), convert its rows to
float (``DataSplits.to_float``: images stay uint8 on the device), evaluate the objective (under
autocast with ``train.precision`` bf16/fp16, see :mod:`hierot.precision`), stop on a non-finite
term, back-propagate, take the gradient norm in one fused pass and stop if a gradient is not
finite, clip it (``optimizer.clip_grad_norm``), step the optimiser and the learning-rate schedule
(:mod:`hierot.schedules`); with ``train.skip_update`` a bad update is skipped instead
(:mod:`hierot.training.updates`); with ``train.ema`` the average of the weights is updated
(:mod:`hierot.training.ema`) and its BatchNorm statistics recomputed before each held-out
evaluation and checkpoint; before every checkpoint the parameters and the optimiser's state are
checked too (:meth:`Trainer._check_finite`: one fused reduction, one device sync; nothing
non-finite is ever logged or saved). Every ``log_every`` steps the running means of every term and
of the gradient norm, the learning rate, the seconds per step and the count of skipped updates go
to metrics.csv and the callbacks (:mod:`hierot.callbacks`); every ``eval_every`` steps the terms on
the test split too (:mod:`hierot.training.heldout`), keeping ``checkpoints/best.pt``; every
``checkpoint_every`` steps (and at the end) a checkpoint is written, holding all that a resume
needs to continue exactly: weights, optimiser, schedule, loss scale, data order, RNG state and the
running sums of the next metrics row.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import torch

from hierot._utils import seeded_on
from hierot.builder import Built
from hierot.errors import HierotError, NonFiniteLossError
from hierot.run import CHECKPOINT_FORMAT, MetricsWriter, Run
from hierot.training.batches import fixed_batches, gather_rows
from hierot.training.callbacks import Callback
from hierot.training.heldout import HeldOutEvaluation
from hierot.training.parts import TrainingParts, build_training
from hierot.training.progress import progress_bar, progress_text
from hierot.training.runtime import Runtime
from hierot.training.updates import norms


@dataclass
class TrainResult:
    """What a finished run leaves in memory (the run directory holds the same on disk)."""

    steps: int
    wall_time: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    run_dir: Run | None = None


class Trainer:
    """Trains ``built`` on ``runtime``, writing to ``run_dir`` (rank 0 only; ``None``: nowhere).

    ``callbacks`` are called on the main process only
    (:func:`~hierot.training.parts.build_training` builds those of the spec's ``callbacks``).
    """

    def __init__(self, built: Built | TrainingParts, run_dir: Run | None = None,
                 runtime: Runtime | None = None, keep_checkpoints: int = 2,
                 callbacks: list[Callback] | tuple[Callback, ...] = ()):
        """``built``: the parts of :func:`~hierot.training.parts.build_training`, or the
        builder's modules, from which they are built here (with ``runtime`` and ``callbacks``)."""
        parts = (built if isinstance(built, TrainingParts)
                 else build_training(built, runtime, callbacks=callbacks))
        self.built, self.spec, self.runtime = parts.built, parts.built.spec, parts.runtime
        self.run_dir = run_dir if self.runtime.is_main else None
        self.keep_checkpoints = keep_checkpoints
        self.precision, self.model, self.objective = parts.precision, parts.model, parts.objective
        self.trained = parts.trained  # what computes the loss (DDP-wrapped)
        self.copies = parts.copies  # bf16: the objective on weight copies cast once per update
        self.optimizer, self.scheduler = parts.optimizer, parts.scheduler
        self.updates, self.ema, self.order = parts.updates, parts.ema, parts.order
        self.total_steps, self.train_x = parts.total_steps, parts.train_x
        self.heldout, self.best, self.callbacks = parts.heldout, parts.best, parts.callbacks
        self.step = 0
        self.wall_time = 0.0
        self.saved_step: int | None = None
        """Step of the last checkpoint written or loaded (``None``: none yet)."""
        self._sums: dict[str, torch.Tensor] = {}  # running sums of the next metrics row
        self._count = 0

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "wall_time": self.wall_time,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "precision": self.precision.state(),
            "best": self.best.state(),
            "batches": self.order.state(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "runtime": self.runtime.state(),  # world size (resume needs the same)
            "log_sums": {name: torch.as_tensor(s).detach().clone()
                         for name, s in self._sums.items()},
            "log_count": self._count,
            "updates": self.updates.state(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def load_state(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise HierotError(f"checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:  # absent in checkpoints written before schedules
            self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state(state.get("precision", {}))
        self.best.load_state(state.get("best"))
        self.order.load_state(state["batches"])
        self.step, self.wall_time = int(state["step"]), float(state["wall_time"])
        torch.set_rng_state(state["rng_cpu"].cpu())  # loaded onto the device: back to the CPU
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        self.runtime.load_state(state.get("runtime", {}))
        device = self.runtime.device
        self._sums = {name: s.to(device) for name, s in state.get("log_sums", {}).items()}
        self._count = int(state.get("log_count", 0))
        self.updates.load_state(state.get("updates", {}))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.saved_step = self.step

    def _save(self) -> None:
        self._check_finite(self._no_norms(), step=self.step)
        self._average_statistics()
        if self.run_dir is not None:
            path = self.run_dir.save_checkpoint(self.state(), self.step, self.keep_checkpoints)
            self.callbacks.on_checkpoint(self.step, path)
        self.saved_step = self.step

    # -- the non-finite guard ------------------------------------------------------------------
    def _optimizer_tensors(self) -> list[torch.Tensor]:
        return [v for s in self.optimizer.state.values() for v in s.values()
                if torch.is_tensor(v) and v.is_floating_point()]

    def _no_norms(self) -> torch.Tensor:
        return torch.zeros(0, device=self.runtime.device)

    def _check_finite(self, grad_norms: torch.Tensor, *, parameters: bool = True,
                      step: int | None = None) -> None:
        """Stop on a non-finite gradient (``grad_norms``, taken before the step) and, with
        ``parameters``, a non-finite parameter or optimiser state: one fused norm per tensor, one
        sync. Only when a norm is not finite are the tensors themselves checked, by name (a norm
        can also overflow on huge finite values: then nothing is found and training goes on).

        Every step checks the gradients only; the parameters and the optimiser's state are
        checked before each checkpoint is written. With finite gradients and a finite learning
        rate an update is finite, and a parameter that still turned non-finite makes the next
        step's loss non-finite, which stops that step; reading every parameter and both of
        Adam's moments each step cost 6-10% of the paper model's step on a CPU. ``step``
        names the step in the message (default: the one being taken, ``self.step + 1``).
        """
        tensors = ([p.detach() for p in self.model.parameters()] + self._optimizer_tensors()
                   if parameters else [])
        every = torch.cat([grad_norms, norms(tensors, grad_norms.device)])
        if bool(torch.isfinite(every).all()):
            return
        named = dict(self.model.named_parameters())
        bad_grads = [n for n, p in named.items() if grad_norms.numel() and p.grad is not None
                     and not bool(torch.isfinite(p.grad).all())]
        bad_params = [n for n, p in named.items()
                      if parameters and not bool(torch.isfinite(p).all())]
        names = {id(p): n for n, p in named.items()}
        bad_state = sorted({f"{names.get(id(p), '?')}.{k}" for p, s in self.optimizer.state.items()
                            for k, v in s.items() if parameters and torch.is_tensor(v)
                            and v.is_floating_point() and not bool(torch.isfinite(v).all())})
        if not (bad_grads or bad_params or bad_state):
            return  # a norm overflowed; every value is finite
        what = (f"gradient of {_some(bad_grads)}" if bad_grads else
                f"parameter {_some(bad_params)} after the optimiser step" if bad_params else
                f"optimiser state {_some(bad_state)}")
        step = self.step + 1 if step is None else step
        raise NonFiniteLossError(f"step {step}: non-finite {what}; {self._kept()}")

    def _kept(self) -> str:
        if self.saved_step is None:
            return "training stopped, no checkpoint was written"
        return f"training stopped, the last finite checkpoint (step {self.saved_step}) is kept"

    def _average_statistics(self) -> None:
        """With ``train.ema.batchnorm: recompute``, the BatchNorm statistics of the current
        averages (:meth:`~hierot.training.ema.WeightEMA.recompute_statistics`), once per step, on
        every process (a synchronised BatchNorm needs them all): ``batchnorm_batches`` fixed
        training batches (each process its shard), in the training precision, the random draws
        from a generator forked off the training stream and seeded with the spec's seed."""
        if self.ema is None or not self.ema.recomputes or self.ema.statistics_step == self.step:
            return
        device = self.runtime.device
        batches = fixed_batches(len(self.train_x), self.spec.train.batch_size, self.spec.seed,
                                self.ema.batchnorm_batches)

        def forward(indices: torch.Tensor) -> None:
            rows = gather_rows(self.train_x, self.runtime.shard(indices), device)
            # eager under train.compile: BatchNorm's cumulative mean would break and re-trace
            with torch.compiler.set_stance("force_eager"), self.precision.autocast():
                self.objective(self.built.data.to_float(rows))

        with seeded_on(device, self.spec.seed):
            self.ema.recompute_statistics(self.step, batches, forward)

    def _evaluate(self, heldout: HeldOutEvaluation) -> dict[str, float]:
        """The held-out terms (logged and sent to the callbacks); keeps ``best.pt`` up to date."""
        with self.ema.swapped() if self.ema is not None else contextlib.nullcontext():
            metrics = heldout()  # with the averaged weights, when there are some
        self.callbacks.on_eval(self.step, metrics)
        if self.best.improved(self.step, metrics) and self.run_dir is not None:
            self._check_finite(self._no_norms(), step=self.step)
            path = self.run_dir.save_best(self.state())
            self.callbacks.on_checkpoint(self.step, path)
        return metrics

    def learning_rate(self) -> float:
        """The learning rate of the step just taken (the schedule's factor times optimizer.lr)."""
        schedule = self.spec.optimizer.schedule
        return self.spec.optimizer.lr * schedule.factor(self.step, self.total_steps)

    # -- the loop ------------------------------------------------------------------------------
    def _train_step(self) -> dict[str, torch.Tensor] | None:
        """One step; its terms and gradient norm, or ``None`` when its update was skipped."""
        indices = self.runtime.shard(self.order.next())
        rows = gather_rows(self.train_x, indices, self.runtime.device)  # uint8 images stay uint8
        self.objective.set_step(self.step)  # schedules inside the objective (KL warm-up)
        self.updates.remember()
        with self.precision.autocast():  # bf16: on copies of the weights cast once per update
            terms = (self.copies or self.trained)(self.built.data.to_float(rows))
        loss = terms.total
        self.optimizer.zero_grad(set_to_none=True)
        # under DDP every rank learns which ranks' objectives are not finite: all skip together
        elsewhere = getattr(self.trained, "nonfinite_ranks", None)
        if not torch.isfinite(loss) or (elsewhere and self.updates.skips_loss()):
            bad = [n for n, v in terms.weighted.items() if not torch.isfinite(v)] or ["total"]
            if self.updates.skips_loss():
                where = (f": {', '.join(bad)}" if not torch.isfinite(loss) else
                         f" on rank(s) {', '.join(map(str, elsewhere or []))}")
                self._skip(f"non-finite loss{where}")
                return None
            raise NonFiniteLossError(
                f"step {self.step + 1}: non-finite objective term(s) {', '.join(bad)}; "
                f"{self._kept()}"
            )
        self.precision.backward(loss)
        each, norm = self.updates.grad_norms(self.optimizer)  # one fused pass
        total = float(norm)  # the step's one sync
        reason = self.updates.reason(total)
        if reason == "stop":
            self._check_finite(each, parameters=False)  # names the bad gradients and stops
            reason = None  # a norm overflowed on finite values: clipping scales them down
        if reason is not None:
            self._skip(reason)
            return None
        self.updates.clip_(norm)
        self.precision.step(self.optimizer)
        self.scheduler.step()
        self.updates.taken()
        return {**terms.detached(), "grad_norm": norm}

    def _skip(self, reason: str) -> None:
        """Skip this step's update: the optimiser untouched, the schedule advanced."""
        self.updates.skipped_update(self.step + 1, reason, self.optimizer, self._kept())
        with warnings.catch_warnings():  # torch warns of a schedule stepped before its optimiser
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            self.scheduler.step()

    def _log(self, writer: MetricsWriter | None, started: float, since: tuple[float, int],
             evaluate: bool) -> dict[str, float]:
        """Average the terms summed since the last log (over every process), send them to the
        callbacks and ``metrics.csv`` with the held-out terms when ``evaluate``; return them."""
        now = time.perf_counter()
        self.wall_time = now - started
        last = self.runtime.mean({name: float(s) / self._count for name, s in self._sums.items()})
        row = {"step": self.step, "epoch": self.order.epoch, "wall_time": round(self.wall_time, 3)}
        extra = {"lr": self.learning_rate(),
                 "step_time": (now - since[0]) / max(self.step - since[1], 1),
                 "skipped": self.updates.skipped}
        self.callbacks.on_log(self.step, {**last, **extra, "epoch": self.order.epoch})
        if evaluate:
            self._average_statistics()  # every process: a synchronised BatchNorm needs them all
        held_out = self._evaluate(self.heldout) if evaluate and self.heldout is not None else {}
        if writer:
            writer.write({**row, **last, **extra, **held_out})
        self._sums, self._count = {}, 0
        return last

    def fit(self) -> TrainResult:
        train = self.spec.train
        steps = self.total_steps
        self.model.train()
        writer = self.run_dir.metrics_writer() if self.run_dir else None
        last: dict[str, float] = {}
        started = time.perf_counter() - self.wall_time
        self.callbacks.on_train_start(self.spec, self.step)
        since = (time.perf_counter(), self.step)  # start of the logging interval: time, step
        try:
            with progress_bar(steps, self.step,
                              enabled=train.progress and self.runtime.is_main) as bar:
                while self.step < steps:
                    values = self._train_step()
                    self.step += 1
                    if self.ema is not None:
                        self.ema.update(self.step)
                    if values is not None:
                        self._count += 1
                        for name, value in values.items():
                            self._sums[name] = self._sums.get(name, 0.0) + value
                    bar.update(1)
                    done = self.step == steps
                    evaluate = train.eval_every is not None and (
                        self.step % train.eval_every == 0 or done)
                    if self.step % train.log_every == 0 or done or evaluate:
                        last = self._log(writer, started, since, evaluate)
                        bar.set_postfix_str(progress_text(last), refresh=False)
                        since = (time.perf_counter(), self.step)
                    if self.step % train.checkpoint_every == 0 or done:
                        self.wall_time = time.perf_counter() - started
                        self._save()
        except BaseException:
            self.callbacks.close()
            raise
        finally:
            if writer:
                writer.close()
        result = TrainResult(self.step, self.wall_time, last, self.run_dir)
        if self.run_dir is not None:
            self.run_dir.write_summary(result.steps, result.wall_time)
        try:
            self.callbacks.on_train_end(result)
        finally:
            self.callbacks.close()
        return result


def _some(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")
