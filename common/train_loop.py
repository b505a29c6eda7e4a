"""The training loop shared by every paper.

A paper supplies a `Task`: its networks and optimizers, a train step written
with plain TF ops, and a `predict` used for sample grids and evaluation. The
loop supplies everything else:

  * automatic resume from ``workdir/checkpoints`` (models, optimizers, step and
    training phase), keep-N checkpoints, a save on Ctrl-C / SIGTERM;
  * a ``tf.function`` loop that runs several steps per call (optionally with an
    XLA-compiled step), under a ``tf.distribute`` strategy; under
    ``multi_worker`` only the chief writes files;
  * TensorBoard scalars and image grids (``workdir/train``, ``workdir/eval``),
    ``workdir/metrics.jsonl`` and PNG grids under ``workdir/samples/``;
  * a progress line with images/s and ETA;
  * a guard that stops on a non-finite loss before it can be checkpointed;
  * a check at start that the disk can hold the checkpoints.

Precision, devices and strategies are `common.devices`'; checkpoints (resume,
save, the disk check) are `common.checkpoints`'.

Checkpoints are written by ``tf.train.CheckpointManager``: the data files are
written first and the ``checkpoint`` index is replaced atomically afterwards,
so a crash while saving leaves the index pointing at the previous good
checkpoint.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from typing import Callable, Iterator, Mapping

import numpy as np
import tensorflow as tf
import keras
from absl import logging

from common import checkpoints as checkpoints_lib
from common import devices
from common import metrics as metrics_lib
from common import run_dir
from common import visualize
from common.errors import UserError


class NonFiniteLossError(RuntimeError):
    """Raised when a loss becomes NaN or infinite; the last checkpoint is kept."""


class Task(abc.ABC):
    """What a paper gives the loop. Build it inside `strategy.scope()`."""

    # What the run's results hang on that its flags alone do not show (random
    # VGG weights, say): logged loudly at start and put in every sample grid's title.
    caveat: str = ""

    @abc.abstractmethod
    def checkpoint_items(self) -> dict[str, object]:
        """Models and optimizers to checkpoint, by name (frozen VGGs excluded)."""

    def phase_at(self, step: int) -> int:
        """Training phase (0, 1, ...) of the step that starts at `step`."""
        del step
        return 0

    def phase_name(self, phase: int) -> str:
        return str(phase)

    def build_optimizers(self) -> None:
        """Creates optimizer slots, so a restore or an XLA step finds them."""

    @abc.abstractmethod
    def train_step(self, batch: Mapping[str, tf.Tensor], phase: int) -> dict[str, tf.Tensor]:
        """One update on a per-replica batch; returns scalar float32 losses.

        Traced once per phase: `phase` is a Python int. Each network's
        update goes through `update(optimizer, tape, loss, model)`, which
        scales for the replicas and for float16 loss scaling.
        """

    @abc.abstractmethod
    def predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Inference on a batch: images in [-1, 1] of the full input size.

        Returns a dict with keys "input" (what the network sees, holes filled),
        "output" (the raw prediction), "composite" (prediction in the hole,
        known pixels elsewhere), "target" (the ground truth), and "mask" (1 =
        the pixels the composite takes from the prediction).
        """


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Settings of the loop itself, shared by all papers."""

    workdir: str
    num_steps: int
    batch_size: int  # global batch size, for images/s
    log_every: int = 50
    checkpoint_every: int = 1000
    sample_every: int = 500
    eval_every: int = 1000
    keep_checkpoints: int = 3
    milestone_every: int = 0  # 0: none; else keep ckpt-STEP of every multiple in milestones/
    jit_compile: bool = False
    steps_per_loop: int = 1  # train steps per compiled call (fewer host round trips)

    def __post_init__(self):
        for name in ("num_steps", "batch_size", "log_every", "checkpoint_every", "sample_every",
                     "eval_every", "keep_checkpoints", "steps_per_loop"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be a positive integer, got {getattr(self, name)}.")
        if self.milestone_every < 0 or self.milestone_every % self.checkpoint_every:
            raise UserError(f"--milestone_every must be 0 (none) or a multiple of "
                            f"--checkpoint_every ({self.checkpoint_every}), got "
                            f"{self.milestone_every}: only saved steps can be kept.")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    step: int
    interrupted: bool
    last_losses: dict[str, float]


# ----------------------------------------------------------------------------
# Optimizer steps (loss scaling and replicas)


def make_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Wraps an optimizer in its own loss-scale optimizer under float16."""
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def update(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape, loss: tf.Tensor,
           model: keras.Model) -> None:
    """One step of `model`'s trainable weights down the gradient of `loss`.

    `loss` is this replica's mean loss, recorded by `tape`. Every update goes
    through here so that neither scaling can be forgotten: the gradient is
    divided by the number of replicas (the optimizer sums the replicas'
    gradients, so they average), and multiplied by the loss scale of a float16
    loss-scale optimizer (which unscales it again before the update). Both
    enter as the seed of the backward pass, the same as differentiating
    `loss / replicas * scale`.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    seed = tf.ones_like(loss) / replicas
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        seed = optimizer.scale_loss(seed)
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables, output_gradients=seed),
                                  variables))


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------
# Interruption


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        del frame
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # A second Ctrl-C stops at once.
        self.signal_name = signal.Signals(signum).name
        logging.warning("%s received: saving a checkpoint after this step.", self.signal_name)

    def raise_if_requested(self) -> None:
        """Start-up's check: a signal that came before training began ends the command
        (KeyboardInterrupt: one line and exit code 130, see common.cli.run_app)."""
        if self:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


# ----------------------------------------------------------------------------
# The loop


def distributed_step(task: Task, strategy: tf.distribute.Strategy, phase: int,
                     jit_compile: bool) -> Callable[[Mapping[str, tf.Tensor]], dict]:
    """One step of `phase` on a distributed batch; returns losses averaged over replicas.

    Only the per-replica step is XLA-compiled: the strategy's cross-device
    reduction and the input iterator stay outside the compiled cluster.
    """
    replica_step = tf.function(lambda batch: task.train_step(batch, phase),
                               jit_compile=jit_compile)

    def step(batch):
        losses = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in losses.items()}

    return step


def compiled_loops(task: Task, strategy: tf.distribute.Strategy, *, jit_compile: bool,
                   step_var: tf.Variable, writer=None, log_every: int = 1,
                   num_steps: int | None = None) -> Callable[[int], Callable]:
    """Returns phase -> `run(iterator, n)`, a tf.function that runs n steps in the graph.

    Running several steps per call removes the host round trip of every step
    (reading losses, assigning the step counter). `run` returns the losses of
    its last step, whether every loss of every step was finite, and the first
    step (1-based) whose losses were not. When `writer` is given, the losses
    are written to TensorBoard from inside the graph at the steps where
    `step % log_every == 0` (and at `num_steps`), under `tf.summary.record_if`.
    """
    cache: dict[int, Callable] = {}

    def record_now():
        step = step_var.read_value()
        due = tf.equal(step % log_every, 0)
        return due if num_steps is None else tf.logical_or(due, tf.equal(step, num_steps))

    def finite(losses):
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in losses.values()])

    def summarise(losses):
        if writer is None:
            return
        # The empty name scope keeps the tags free of the loop's "while/" prefix.
        with (writer.as_default(step=step_var), tf.summary.record_if(record_now),
              tf.name_scope("")):
            for key, value in losses.items():
                tf.summary.scalar(f"loss/{key}", value)

    def for_phase(phase: int) -> Callable:
        if phase in cache:
            return cache[phase]
        step = distributed_step(task, strategy, phase, jit_compile)

        def one_step(iterator, all_finite, first_bad):
            losses = step(next(iterator))
            step_var.assign_add(1)
            ok = finite(losses)
            first_bad = tf.where(all_finite & ~ok, step_var.read_value(), first_bad)
            summarise(losses)
            return losses, all_finite & ok, first_bad

        @tf.function
        def run(iterator, n):
            # The first step outside the loop gives the losses their structure.
            losses, all_finite, first_bad = one_step(
                iterator, tf.constant(True), tf.constant(0, tf.int64))
            for _ in tf.range(n - 1):
                losses, all_finite, first_bad = one_step(iterator, all_finite, first_bad)
            return losses, all_finite, first_bad

        cache[phase] = run
        return run

    return for_phase


def steps_until_event(step: int, config: "LoopConfig", phase_at: Callable[[int], int]) -> int:
    """How many steps the next compiled call may run from `step`.

    At most `steps_per_loop`, and never past a step where the host has work to
    do: logging, samples, evaluation, a checkpoint, the end, or a phase change
    (the steps of one call all belong to one phase).
    """
    limit = min(config.num_steps, step + config.steps_per_loop)
    for every in (config.log_every, config.sample_every, config.eval_every,
                  config.checkpoint_every):
        limit = min(limit, (step // every + 1) * every)
    phase = phase_at(step)
    for later in range(step + 1, limit):
        if phase_at(later) != phase:
            return later - step
    return limit - step


def log_progress(writer, metrics_path: str, *, step: int, num_steps: int, phase_name: str,
                 losses: Mapping[str, float], images_per_second: float,
                 seconds_per_step: float) -> None:
    """Writes the losses to metrics.jsonl, the speed to TensorBoard, and one progress line.

    The losses reach TensorBoard from inside the compiled loop (`compiled_loops`).
    """
    with writer.as_default(step=step):
        tf.summary.scalar("images_per_second", images_per_second)
    run_dir.append_metrics(metrics_path, {"step": step, "split": "train", "phase": phase_name,
                                  "images_per_second": images_per_second, **losses})
    logging.info("step %d/%d (%.1f%%) [%s] %.1f img/s ETA %s | %s", step, num_steps,
                 100.0 * step / num_steps, phase_name, images_per_second,
                 format_duration((num_steps - step) * seconds_per_step),
                 " ".join(f"{k}={v:.4g}" for k, v in losses.items()))


def evaluate(task: Task, batches, lpips=None) -> dict[str, float]:
    """Mean inpainting metrics of the task's composites over evaluation batches.

    `lpips`, a `common.lpips.LPIPS`, adds "lpips_<net>" (on the composites as
    floats clipped to [-1, 1]; `inpaint-eval` scores the 8-bit files instead).
    """
    totals: dict[str, float] = {}
    count = 0
    for batch in batches:
        outputs = task.predict(batch)
        values = metrics_lib.inpainting_metrics(outputs["composite"], outputs["target"],
                                                outputs["mask"])
        if lpips is not None:
            clipped = [tf.clip_by_value(tf.cast(outputs[k], tf.float32), -1.0, 1.0)
                       for k in ("composite", "target")]
            values[f"lpips_{lpips.net}"] = tf.reduce_mean(lpips(*clipped))
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        count += 1
    if count == 0:
        raise UserError("The evaluation data yielded no full batch.")
    return {key: value / count for key, value in totals.items()}


def non_finite_error(checkpoints: checkpoints_lib.Checkpoints, first_bad: int, step: int,
                     losses: Mapping[str, float]) -> NonFiniteLossError:
    """The error for a non-finite loss, saying which checkpoint is kept."""
    return NonFiniteLossError(
        f"Non-finite loss at step {first_bad} (losses at step {step}: "
        + ", ".join(f"{k}={v}" for k, v in losses.items()) + "). Stopped without saving; "
        + checkpoints.kept_advice())


def summary_writers(workdir: str, chief: bool, has_eval: bool):
    """(train, eval) TensorBoard writers; no-op writers off the chief."""
    if not chief:
        return tf.summary.create_noop_writer(), tf.summary.create_noop_writer()
    train_writer = tf.summary.create_file_writer(os.path.join(workdir, "train"))
    # No eval/ folder without eval data: TensorBoard would show an empty run.
    eval_writer = (tf.summary.create_file_writer(os.path.join(workdir, "eval"))
                   if has_eval else tf.summary.create_noop_writer())
    return train_writer, eval_writer


def write_samples(task: Task, sample_batch: Mapping[str, np.ndarray], workdir: str, step: int,
                  writer) -> None:
    """The sample grid of `sample_batch` at `step`: a PNG under samples/ and TensorBoard."""
    outputs = {k: v.numpy() for k, v in task.predict(sample_batch).items()}
    png = os.path.join(workdir, "samples", f"step_{step:08d}.png")
    visualize.save_sample_grid(outputs, png, title=" | ".join(
        filter(None, [f"step {step}", task.caveat])))
    with writer.as_default(step=step):
        tf.summary.image("samples", visualize.sample_grid(outputs)[None])


def write_evaluation(task: Task, eval_dataset: tf.data.Dataset, writer, metrics_path: str,
                     step: int, lpips=None) -> None:
    """Evaluates at `step`, writing TensorBoard scalars, metrics.jsonl and a log line."""
    values = evaluate(task, eval_dataset, lpips)
    with writer.as_default(step=step):
        for key, value in values.items():
            tf.summary.scalar(key, value)
    run_dir.append_metrics(metrics_path, {"step": step, "split": "eval", **values})
    logging.info("eval at step %d: %s", step,
                 " ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))


def due(step: int, every: int, num_steps: int) -> bool:
    """Whether a periodic event (log, samples, eval, checkpoint) falls on `step`."""
    return step % every == 0 or step == num_steps


def train(task: Task, make_train_dataset: Callable[[int], tf.data.Dataset], config: LoopConfig,
          *, strategy: tf.distribute.Strategy | None = None,
          sample_batch: Mapping[str, np.ndarray] | None = None,
          eval_dataset: tf.data.Dataset | None = None,
          on_start: Callable[[int], None] | None = None,
          eval_lpips=None, stop: StopRequest | None = None) -> TrainResult:
    """Trains `task` until `config.num_steps`, resuming from the work directory.

    Resumes from the newest checkpoint that reads in full (see `run_dir`).

    Args:
      task: the paper's task, built inside `strategy.scope()`.
      make_train_dataset: start_index -> training dataset of global batches; it
        is rebuilt at the resumed position rather than checkpointed.
      config: loop settings.
      strategy: the distribution strategy the task was built under.
      sample_batch: a fixed batch for the image grids.
      eval_dataset: a finite dataset for the periodic evaluation, or None.
      eval_lpips: a `common.lpips.LPIPS` that the periodic evaluation adds, or None.
      on_start: called on the chief with the start step once the checkpoint has
        been restored (it fits the networks), before the first step; records the
        run's settings.
      stop: the caller's StopRequest, installed since its start-up, so that a
        signal that came then stops the run before its first step; None: one of
        the loop's own.

    Returns:
      The final step, whether the run was interrupted, and the last losses.

    Raises:
      NonFiniteLossError: a loss became NaN or infinite (nothing is saved).
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = devices.is_chief(strategy)
    checkpoints_lib.prepare_workdir(config.workdir)
    if task.caveat:
        logging.warning("*** %s ***", task.caveat)
    metrics_path = os.path.join(config.workdir, run_dir.METRICS_FILE)
    checkpoints = checkpoints_lib.Checkpoints(task, config, strategy, chief)
    start_step, current_phase = checkpoints.resume(task, config.workdir)
    if start_step >= config.num_steps:
        # A finished run: none of its files is touched.
        logging.info("Already trained for %d steps (>= %d): nothing to do.", start_step,
                     config.num_steps)
        return TrainResult(step=start_step, interrupted=False, last_losses={})
    if chief:
        run_dir.truncate_metrics(metrics_path, start_step)
        if on_start is not None:
            on_start(start_step)

    iterator = devices.distributed_iterator(make_train_dataset(start_step * config.batch_size),
                                    strategy)
    train_writer, eval_writer = summary_writers(config.workdir, chief, eval_dataset is not None)
    loops_for_phase = compiled_loops(task, strategy, jit_compile=config.jit_compile,
                                     step_var=checkpoints.step, writer=train_writer,
                                     log_every=config.log_every, num_steps=config.num_steps)
    step = start_step
    losses: dict[str, float] = {}
    window_start, window_steps = time.perf_counter(), 0
    if stop is None:
        stop = StopRequest()
    with stop.installed():
        while step < config.num_steps and not stop:
            phase = task.phase_at(step)
            if phase != current_phase:
                logging.info("Step %d: entering phase %s.", step, task.phase_name(phase))
                checkpoints.phase.assign(phase)
                current_phase = phase
            count = steps_until_event(step, config, task.phase_at)
            last_losses, all_finite, first_bad = loops_for_phase(phase)(
                iterator, tf.constant(count, tf.int64))
            losses = {k: float(v) for k, v in last_losses.items()}
            if not bool(all_finite):
                raise non_finite_error(checkpoints, int(first_bad), step + count, losses)
            step += count
            window_steps += count

            if chief and due(step, config.log_every, config.num_steps):
                elapsed = time.perf_counter() - window_start
                log_progress(train_writer, metrics_path, step=step, num_steps=config.num_steps,
                             phase_name=task.phase_name(phase), losses=losses,
                             images_per_second=window_steps * config.batch_size / elapsed,
                             seconds_per_step=elapsed / window_steps)
                window_start, window_steps = time.perf_counter(), 0
            if chief and sample_batch is not None and due(step, config.sample_every,
                                                          config.num_steps):
                write_samples(task, sample_batch, config.workdir, step, train_writer)
            if chief and eval_dataset is not None and due(step, config.eval_every,
                                                          config.num_steps):
                write_evaluation(task, eval_dataset, eval_writer, metrics_path, step, eval_lpips)
            if due(step, config.checkpoint_every, config.num_steps):
                checkpoints.save(step)

        interrupted = bool(stop)
        if interrupted and step not in checkpoints.saved_steps:
            checkpoints.save(step)
        if interrupted:
            logging.warning("Stopped by %s at step %d; rerun the same command to resume.",
                            stop.signal_name, step)
    train_writer.flush()
    eval_writer.flush()
    return TrainResult(step=step, interrupted=interrupted, last_losses=losses)
