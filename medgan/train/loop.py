"""The training loop shared by GANs and classifiers: checkpoints, resume, preemption, metrics, evaluation.

`train_loop` knows nothing about what it trains. It runs a jitted
`step_fn(state, batch) -> (state, metrics)` over a resumable stream of
global batches and owns everything around it (docs/ARCHITECTURE.md, "State, steps and checkpoints"):

* orbax `CheckpointManager` in `<workdir>/checkpoints`, asynchronous. Each
  checkpoint holds two items: "state" (`ocp.args.StandardSave` of the whole
  state pytree) and "loop" (JSON: the controller's state and the loop
  status). Kept: the latest `max_to_keep` checkpoints plus, with
  `best_metric`, the single best one by that validation metric
  (`AnyPreservationPolicy([LatestN, BestN(n=1)])`; `best_fn`/`best_mode` make
  the manager record the metrics and answer `best_step()`).
* resume: if checkpoints exist, the latest is restored against the abstract
  of the given state (shapes, dtypes and shardings of `state`, so the
  restored arrays land replicated/sharded like the fresh ones) and the batch
  stream is restarted at that step: `make_batches(start_step)`. Steps draw their
  randomness from `fold_in(key, state.step)` and the controller's state is
  restored too, so a resumed run is bit-identical to an uninterrupted one.
* preemption: SIGTERM (one process: a Python signal handler; several
  processes: jax's preemption sync point, `CheckpointManager.reached_preemption`,
  so that all processes stop at the same step) -> the current step finishes,
  a checkpoint is saved and awaited, and the loop returns status
  "preempted"; the job then exits 0 and the scheduler requeues it.
* metrics: `clu.metric_writers.create_default_writer` (TensorBoard events in
  `workdir` + log; logging only on processes > 0) and
  `periodic_actions.ReportProgress` (steps/s, ETA). Step metrics stay device
  arrays until a log step, where the mean over the interval is fetched once.
* evaluation every `eval_every` steps: `evaluate(state) -> {name: float}`,
  written as "eval/<name>", then `controller(state, metrics, step)` (e.g.
  `PlateauController`: LR x0.1 on a plateau, early stopping), then a
  checkpoint carrying the metrics (for the best-checkpoint policy).
* display: a `medgan.console.Progress` bar on stdout (process 0; label
  `progress_desc`, default "train <last component of workdir>"), updated
  from the host step counter, never from a device value; images/s from the
  first batch's global shape (array metadata, no transfer). The log lines
  of clu and orbax go where `console.setup` sends them (`<workdir>/log.txt`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import jax
import numpy as np
import orbax.checkpoint as ocp
from clu import metric_writers, periodic_actions
from orbax.checkpoint import checkpoint_managers

from medgan import console
from medgan.train import faults

State = Any
Metrics = Mapping[str, float]

FINISHED, EARLY_STOPPED, PREEMPTED = "finished", "early_stopped", "preempted"
CHECKPOINT_DIR = "checkpoints"


class Controller(Protocol):
    """Acts on evaluation results; its state is checkpointed with the train state."""

    def __call__(self, state: State, metrics: Metrics, step: int) -> tuple[State, bool]:
        """(possibly changed state, stop training?)"""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclasses.dataclass
class PlateauController:
    """Learning rate x `factor` on a plateau of a validation metric, and early stopping (the study's schedule).

    An evaluation improves if it beats the best value so far by more than
    `min_delta` (higher for mode "max", lower for "min"). After `patience`
    evaluations in a row without improvement (counted from the last
    improvement or the last LR drop; `plateau_patience`) the state's learning
    rate is multiplied by `plateau_factor` via
    `scale_learning_rate(state, factor)` (e.g. `state.scale_learning_rate`);
    after `early_stop_patience` evaluations without improvement (None: never)
    training stops. Like
    torch's ReduceLROnPlateau, which the study's code used.

    State (checkpointed): best, bad_evals, evals_since_change, lr_factor.
    """

    metric: str
    scale_learning_rate: Callable[[State, float], State] | None = None  # None: early stopping only
    mode: str = "max"
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    early_stop_patience: int | None = 5
    min_delta: float = 0.0
    best: float | None = None
    bad_evals: int = 0
    evals_since_change: int = 0
    lr_factor: float = 1.0

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"PlateauController: mode must be 'max' or 'min', got {self.mode!r}")
        if self.plateau_patience < 1 or (self.early_stop_patience is not None and self.early_stop_patience < 1):
            raise ValueError(
                f"PlateauController: plateau_patience {self.plateau_patience} and early_stop_patience "
                f"{self.early_stop_patience} must be >= 1"
            )

    def __call__(self, state: State, metrics: Metrics, step: int) -> tuple[State, bool]:
        if self.metric not in metrics:
            raise KeyError(f"PlateauController: metric {self.metric!r} not among the evaluation's {sorted(metrics)}")
        value = float(metrics[self.metric])
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.bad_evals, self.evals_since_change = value, 0, 0
            return state, False
        self.bad_evals += 1
        self.evals_since_change += 1
        if self.scale_learning_rate is not None and self.evals_since_change >= self.plateau_patience:
            state = self.scale_learning_rate(state, self.plateau_factor)
            self.lr_factor *= self.plateau_factor
            self.evals_since_change = 0
            logging.info("step %d: %s plateaued at %.5g; learning rate x%g (now x%g)", step, self.metric, self.best,
                         self.plateau_factor, self.lr_factor)
        stop = self.early_stop_patience is not None and self.bad_evals >= self.early_stop_patience
        if stop:
            logging.info("step %d: early stop, %s has not improved for %d evaluations", step, self.metric,
                         self.bad_evals)
        return state, stop

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("best", "bad_evals", "evals_since_change", "lr_factor")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclasses.dataclass(frozen=True)
class LoopResult:
    """What a `train_loop` call ended with.

    state: the final state; steps: its step; reason: FINISHED | EARLY_STOPPED
    | PREEMPTED. With `best_metric`: best_step, best_metrics (all evaluation
    metrics of that checkpoint), best_value (= best_metrics[best_metric]) and
    best_state (that checkpoint restored like `state`; `state` itself when
    the best is the final step); otherwise None. steps_run: steps done by
    this call; train_seconds: wall time of its steps after the first (which
    includes compilation; `timed_steps` = steps_run - 1), without
    evaluations and checkpoint saves. skipped_steps: updates of this call
    skipped for a non-finite loss or gradient (`train/faults`).
    """

    state: State
    steps: int
    reason: str
    best_step: int | None = None
    best_metrics: dict[str, float] | None = None
    best_value: float | None = None
    best_state: State | None = None
    steps_run: int = 0
    timed_steps: int = 0
    train_seconds: float = 0.0
    skipped_steps: int = 0

    def images_per_second(self, global_batch_size: int) -> float | None:
        """Training throughput of this call, without the first step (compilation); None if unmeasured."""
        if not self.timed_steps or self.train_seconds <= 0:
            return None
        return self.timed_steps * global_batch_size / self.train_seconds


def checkpoint_manager(
    directory: str | os.PathLike,
    *,
    max_to_keep: int = 1,
    best_metric: str | None = None,
    best_mode: str = "max",
    async_checkpointing: bool = True,
) -> ocp.CheckpointManager:
    """Orbax manager keeping the latest `max_to_keep` checkpoints and the best one by `best_metric`.

    Saves are requested explicitly by the loop (force=True), so no
    save-interval policy is configured here.
    """
    if best_mode not in ("max", "min"):
        raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
    policies: list[Any] = [checkpoint_managers.LatestN(n=max_to_keep)]
    best_fn = None
    if best_metric is not None:
        best_fn = _metric_getter(best_metric)
        policies.append(
            checkpoint_managers.BestN(
                get_metric_fn=best_fn, reverse=best_mode == "min", n=1, keep_checkpoints_without_metrics=False
            )
        )
    options = ocp.CheckpointManagerOptions(
        best_fn=best_fn,
        best_mode=best_mode,
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_checkpointing,
        create=True,
    )
    return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)


def restore(
    manager: ocp.CheckpointManager, abstract_state: State, step: int | None = None
) -> tuple[State, dict[str, Any]]:
    """(state, loop item) of checkpoint `step` (default latest), arrays placed like `abstract_state`.

    `abstract_state` may be a real state or its `jax.ShapeDtypeStruct` tree
    with shardings; e.g. `best = restore(manager, state, manager.best_step())`.
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {manager.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), loop=ocp.args.JsonRestore())
    )
    return restored["state"], dict(restored["loop"])


def train_loop(
    *,
    workdir: str | os.PathLike,
    state: State,
    step_fn: Callable[[State, Mapping[str, jax.Array]], tuple[State, Mapping[str, jax.Array]]],
    make_batches: Callable[[int], Iterator[Mapping[str, jax.Array]]],
    num_steps: int,
    checkpoint_every: int,
    log_every: int,
    eval_every: int | None = None,
    evaluate: Callable[[State], Metrics] | None = None,
    controller: Controller | None = None,
    best_metric: str | None = None,
    best_mode: str = "max",
    max_to_keep: int = 1,
    hooks: Sequence[Callable[[int, State], None]] = (),
    async_checkpointing: bool = True,
    progress_desc: str | None = "",
    images_per_step: int | None = None,
    max_skipped_in_a_row: int | None = None,
) -> LoopResult:
    """Trains `state` to step `num_steps`, resuming from `<workdir>/checkpoints` if it holds any.

    Long because the step loop is one piece: resume, evaluation, control,
    checkpointing, preemption and the progress bar act on the same step and
    state, in an order that makes a resumed run equal an uninterrupted one.

    Args:
      workdir: checkpoints in `checkpoints/`, TensorBoard events directly in it.
      state: the state to train. Without a checkpoint the run starts at its
        `step` field (0 for a fresh state; a state without one starts at 0);
        on resume only its structure, shapes and shardings are used.
      step_fn: one jitted update, `(state, batch) -> (state, metrics)`, metrics
        scalar arrays. It may donate `state`.
      make_batches: `start_step -> iterator of global batches`, where the iterator
        yields the batch of step start_step + 1 first, i.e. resumes the stream
        after `start_step` consumed batches (`pipeline.train_batches(...,
        start_step=s)`).
      num_steps: the step to train to, a total like `state.step` (not the
        steps of this invocation).
      checkpoint_every: save every this many steps (and at evaluations, on
        preemption and at the end).
      log_every: write the mean of the step metrics as "train/<name>" every
        this many steps (the only host sync of the training metrics).
      eval_every: evaluate every this many steps (requires `evaluate`).
      evaluate: `state -> {name: float}` on the validation split.
      controller: called after each evaluation, may change the state and stop
        training; its `state_dict()` is checkpointed.
      best_metric: name of an `evaluate` metric; the best checkpoint by it is
        kept (`best_mode` "max" or "min") and reported.
      max_to_keep: latest checkpoints kept (besides the best).
      hooks: `hook(step, state)` after every step, on every process (e.g.
        image grids at intervals); must not keep a reference to a donated state.
      async_checkpointing: write checkpoints in a background thread.
      progress_desc: label of the console progress bar; "" (default):
        "train <last component of workdir>"; None: no bar.
      images_per_step: the bar's images/s factor; None: the leading size of
        each batch's "image" array (also inside a "batch" entry), so a run
        whose batch changes between phases shows the current phase's rate.
      max_skipped_in_a_row: raise `faults.NonFiniteTraining` (without saving)
        once this many updates in a row were skipped, as the steps report in
        their `faults.SKIPPED` metric; checked where the metrics are fetched
        (every `log_every` steps); None: never stop.

    Returns:
      LoopResult. Status PREEMPTED means a checkpoint of the current step was
      written and the job should exit 0 to be restarted; calling
      `train_loop` again continues the run.
    """
    for name, value in (("num_steps", num_steps), ("checkpoint_every", checkpoint_every), ("log_every", log_every)):
        if value < 1:
            raise ValueError(f"train_loop: {name} must be >= 1, got {value}")
    if (eval_every is None) != (evaluate is None):
        raise ValueError("train_loop: eval_every and evaluate go together")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"train_loop: eval_every must be >= 1, got {eval_every}")
    if (controller is not None or best_metric is not None) and evaluate is None:
        raise ValueError("train_loop: a controller or best_metric needs evaluate/eval_every")

    workdir = os.fspath(workdir)
    manager = checkpoint_manager(
        os.path.join(workdir, CHECKPOINT_DIR),
        max_to_keep=max_to_keep,
        best_metric=best_metric,
        best_mode=best_mode,
        async_checkpointing=async_checkpointing,
    )
    step, status = _state_step(state), None
    if manager.latest_step() is not None:
        state, loop_item = restore(manager, state)
        step = manager.latest_step()
        if controller is not None and loop_item.get("controller") is not None:
            controller.load_state_dict(loop_item["controller"])
        status = loop_item.get("status")
        logging.info("resumed from %s at step %d", manager.directory, step)

    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer, every_steps=log_every)
    pending: list[Mapping[str, jax.Array]] = []
    clock, steps_run, skips = _Clock(), 0, _SkipCounter(max_skipped_in_a_row)
    progress: console.Progress | None = None

    def flush_metrics(step: int) -> None:
        """Writes the pending step metrics and counts their skipped updates (may stop the run)."""
        nonlocal pending
        skips.add(_write_train_metrics(writer, step, pending), step, manager.latest_step())
        pending = []

    def save(step: int, status: str | None, metrics: Metrics | None = None) -> None:
        loop_item = {"status": status, "controller": controller.state_dict() if controller is not None else None}
        manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), loop=ocp.args.JsonSave(loop_item)),
            metrics=dict(metrics) if metrics is not None else None,
            force=True,
        )

    try:
        with _sigterm_flag() as preempt:
            if status == EARLY_STOPPED or step >= num_steps:
                status = status or FINISHED
            else:
                status = None
                stream = make_batches(step)
                first_step = step
                if progress_desc is not None:
                    progress = console.Progress(
                        num_steps, progress_desc or f"train {os.path.basename(os.path.normpath(workdir))}",
                        images_per_step=images_per_step, initial=step, await_sync=True,
                    )
                while step < num_steps:
                    with jax.profiler.StepTraceAnnotation("train", step_num=step + 1):
                        batch = next(stream)
                        state, metrics = step_fn(state, batch)
                    step += 1
                    if step == first_step + 1:  # timing starts after the first step: compilation
                        jax.block_until_ready(metrics)
                        clock.start()
                    if progress is not None:
                        if images_per_step is None:
                            progress.images_per_step = _leading_size(batch)  # a shape: no device sync
                        progress.update(step)  # the host counter: no device sync
                    pending.append(metrics)
                    report(step)
                    for hook in hooks:
                        hook(step, state)
                    if step % log_every == 0 or step == num_steps:
                        flush_metrics(step)  # waits for the step's metrics: the device has run every step
                        if progress is not None:
                            progress.mark_synced()
                    eval_metrics, stop = None, False
                    if eval_every is not None and (step % eval_every == 0):
                        with report.timed("eval"), clock.paused():
                            eval_metrics = {k: float(v) for k, v in evaluate(state).items()}
                        if best_metric is not None and best_metric not in eval_metrics:
                            raise KeyError(f"best_metric {best_metric!r} not among evaluate's {sorted(eval_metrics)}")
                        writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
                        if controller is not None:
                            state, stop = controller(state, eval_metrics, step)
                    preempted = preempt.is_set() or (jax.process_count() > 1 and manager.reached_preemption(step))
                    if stop:
                        status = EARLY_STOPPED
                    elif preempted:
                        status = PREEMPTED
                    elif step == num_steps:
                        status = FINISHED
                    if status is not None or eval_metrics is not None or step % checkpoint_every == 0:
                        with clock.paused():
                            save(step, status, eval_metrics)
                    if status is not None:
                        if pending:
                            flush_metrics(step)
                        logging.info("training %s at step %d", status, step)
                        if progress is not None:
                            progress.close(None if status == FINISHED else status.replace("_", " "))
                        break
                jax.block_until_ready(state)
                clock.stop()
                steps_run = step - first_step
            manager.wait_until_finished()
            best = {}
            if best_metric is not None and manager.best_step() is not None:
                best_step = manager.best_step()
                best_metrics = dict(manager.metrics(best_step))
                best = dict(
                    best_step=best_step,
                    best_metrics=best_metrics,
                    best_value=float(best_metrics[best_metric]),
                    best_state=state if best_step == step else restore(manager, state, best_step)[0],
                )
    finally:
        if progress is not None:
            progress.close("stopped")  # a no-op after the normal close; ends the bar's line on an exception
        writer.close()
        manager.close()
    return LoopResult(
        state=state,
        steps=step,
        reason=status,
        steps_run=steps_run,
        timed_steps=max(steps_run - 1, 0),
        train_seconds=clock.seconds,
        skipped_steps=skips.total,
        **best,
    )


class _Clock:
    """Wall time between start() and stop(), minus the time spent in paused() blocks."""

    def __init__(self):
        self.seconds, self._since = 0.0, None

    def start(self):
        self._since = time.perf_counter()

    def stop(self):
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    @contextlib.contextmanager
    def paused(self):
        running = self._since is not None
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()


def _write_train_metrics(writer, step: int, pending: Sequence[Mapping[str, jax.Array]]) -> list[bool]:
    """Writes the interval's step metrics, fetched in one transfer; returns which of its steps were skipped.

    Each metric is the mean over the interval's steps where it is finite (a
    skipped step's loss is NaN); `faults.SKIPPED` is written as the number of
    skipped steps in the interval.
    """
    if not pending:
        return []
    host = jax.device_get(list(pending))
    skipped = [bool(m.get(faults.SKIPPED, 0.0)) for m in host]
    scalars = {}
    for key in host[0]:
        values = np.asarray([np.asarray(m[key], np.float64) for m in host])
        if key == faults.SKIPPED:
            scalars[f"train/{key}"] = float(values.sum())
            continue
        finite = values[np.isfinite(values)]
        scalars[f"train/{key}"] = float(finite.mean()) if finite.size else math.nan
    bad = [k for k, v in scalars.items() if not math.isfinite(v)]
    if bad:
        logging.warning("step %d: non-finite training metrics %s", step, bad)
    if any(skipped):
        logging.warning("step %d: %d of the last %d updates skipped (non-finite loss or gradient)", step,
                        sum(skipped), len(skipped))
    writer.write_scalars(step, scalars)
    return skipped


class _SkipCounter:
    """Counts skipped updates, in all and in a row, from the flags of each logged interval."""

    def __init__(self, limit: int | None):
        self.limit, self.total, self.in_a_row = limit, 0, 0

    def add(self, flags: Sequence[bool], step: int, latest_checkpoint: int | None) -> None:
        for flag in flags:
            self.in_a_row = self.in_a_row + 1 if flag else 0
            self.total += flag
        if self.limit is not None and self.in_a_row >= self.limit:
            kept = "no checkpoint" if latest_checkpoint is None else f"the checkpoint of step {latest_checkpoint}"
            raise faults.NonFiniteTraining(
                f"the last {self.in_a_row} updates up to step {step} had a non-finite loss or gradient and were "
                f"skipped (limit {self.limit} in a row): training stopped without saving; {kept} holds the last "
                f"finite state. Lower the learning rate or look for a bad batch, then run the same command again."
            )


def _state_step(state: State) -> int:
    """The step a fresh run starts counting from: `state.step` where the state has one (one fetch), else 0.

    A state trained elsewhere and handed to a new work directory continues at
    its own step, so `num_steps` (a total, like the step field) means the same
    thing with and without a checkpoint.
    """
    step = getattr(state, "step", None)
    return 0 if step is None else int(jax.device_get(step))


def _leading_size(batch: Any) -> int | None:
    """Leading (global batch) size of the batch's "image" array, or of batch["batch"]["image"]; shape only."""
    for _ in range(2):
        if not isinstance(batch, Mapping):
            return None
        if "image" in batch:
            shape = getattr(batch["image"], "shape", None)
            return int(shape[0]) if shape else None
        batch = batch.get("batch")
    return None


def _metric_getter(name: str) -> Callable[[Mapping[str, float]], float]:
    def get(metrics: Mapping[str, float]) -> float:
        return float(metrics[name])

    return get


@contextlib.contextmanager
def _sigterm_flag():
    """An Event set by SIGTERM while the block runs (single process, main thread; else never set).

    With several processes jax's preemption service owns SIGTERM and the loop
    asks `reached_preemption` instead, so every process stops at the same step.
    """
    event = threading.Event()
    if jax.process_count() > 1 or threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        logging.warning("SIGTERM: finishing the current step, saving a checkpoint and stopping")
        event.set()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGTERM, previous)
