"""The training loop shared by every paper.

A paper supplies a `Task`: its networks and optimizers, a train step written
with plain TF ops, and a `predict` used for sample grids and evaluation. The
loop supplies everything else:

  * automatic resume from ``workdir/checkpoints`` (models, optimizers, step and
    training phase), keep-N checkpoints, a save on Ctrl-C / SIGTERM;
  * a ``tf.function`` step (optionally XLA-compiled), run under a
    ``tf.distribute`` strategy;
  * TensorBoard scalars and image grids (``workdir/train``, ``workdir/eval``),
    ``workdir/metrics.jsonl`` and PNG grids under ``workdir/samples/``;
  * a progress line with images/s and ETA;
  * a guard that stops on a non-finite loss before it can be checkpointed.

Checkpoints are written by ``tf.train.CheckpointManager``: the data files are
written first and the ``checkpoint`` index is replaced atomically afterwards,
so a crash while saving leaves the index pointing at the previous good
checkpoint.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
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

from common import metrics as metrics_lib
from common import visualize


class NonFiniteLossError(RuntimeError):
    """Raised when a loss becomes NaN or infinite; the last checkpoint is kept."""


class Task(abc.ABC):
    """What a paper gives the loop. Build it inside `strategy.scope()`."""

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

        Traced once per phase: `phase` is a Python int. Losses used for
        gradients must be divided by the number of replicas in sync (see
        `replica_loss`), because the optimizer sums gradients over replicas.
        """

    @abc.abstractmethod
    def predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Inference on a batch: images in [-1, 1] of the full input size.

        Returns a dict with keys "input" (what the network sees, holes filled),
        "output" (the raw prediction), "composite" (prediction in the hole,
        known pixels elsewhere), "target" (the ground truth), and "mask" (1 =
        the pixels the composite takes from the prediction).
        """


def replica_loss(loss: tf.Tensor) -> tf.Tensor:
    """Scales a per-replica mean loss so that summed replica gradients average."""
    return loss / tf.distribute.get_strategy().num_replicas_in_sync


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
    jit_compile: bool = False

    def __post_init__(self):
        for name in ("num_steps", "batch_size", "log_every", "checkpoint_every", "sample_every",
                     "eval_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}.")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    step: int
    interrupted: bool
    last_losses: dict[str, float]


# ----------------------------------------------------------------------------
# Precision and devices


def set_precision(mixed_precision: str) -> None:
    """Sets Keras' global dtype policy: 'none' (float32), 'float16' or 'bfloat16'."""
    policies = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    if mixed_precision not in policies:
        raise ValueError(f"--mixed_precision must be one of {sorted(policies)}, "
                         f"got {mixed_precision!r}.")
    keras.mixed_precision.set_global_policy(policies[mixed_precision])


def make_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Wraps an optimizer in its own loss-scale optimizer under float16."""
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def scale_loss(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: scaled when the optimizer is a loss-scale optimizer."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def apply_gradients(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape,
                    scaled_loss: tf.Tensor, model: keras.Model) -> None:
    """One update of `model`'s trainable weights from the tape's gradient of `scaled_loss`.

    `scaled_loss` comes from `scale_loss(optimizer, replica_loss(loss))`, computed
    inside the tape; a loss-scale optimizer unscales the gradients itself.
    """
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))


def make_strategy(name: str) -> tf.distribute.Strategy:
    """'default' (one device) or 'mirrored' (all local GPUs, or CPU if none)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"--strategy must be 'default' or 'mirrored', got {name!r}.")


# ----------------------------------------------------------------------------
# Work directory


def prepare_workdir(workdir: str) -> None:
    """Creates the work directory and fails early if it cannot be written."""
    try:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise OSError(f"--workdir {workdir!r} is not writable: {error}") from error


def truncate_metrics_log(path: str, last_step: int) -> None:
    """Drops log lines after `last_step`: those steps are recomputed after a resume."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def append_metrics(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


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


def compiled_steps(task: Task, strategy: tf.distribute.Strategy,
                    jit_compile: bool) -> Callable[[int], Callable]:
    """Returns phase -> compiled distributed step (built lazily, once per phase)."""
    cache: dict[int, Callable] = {}

    def for_phase(phase: int) -> Callable:
        if phase not in cache:
            step = tf.function(lambda batch: task.train_step(batch, phase),
                               jit_compile=jit_compile)

            @tf.function
            def distributed_step(batch):
                losses = strategy.run(step, args=(batch,))
                return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                        for k, v in losses.items()}

            cache[phase] = distributed_step
        return cache[phase]

    return for_phase


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def has_checkpoint(workdir: str) -> bool:
    """Whether the work directory holds a checkpoint to resume from."""
    return tf.train.latest_checkpoint(checkpoint_dir(workdir)) is not None


def restore_latest(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager,
                   workdir: str) -> None:
    """Restores the latest checkpoint, or explains why it does not fit the networks."""
    try:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise ValueError(
            f"The checkpoint {manager.latest_checkpoint} does not match the networks built from "
            f"the current flags (was the run started with other settings?). Relaunch it with "
            f"--flagfile={os.path.join(workdir, 'flags.cfg')}, or use a new --workdir. "
            f"Details: {error}") from error


def log_progress(writer, metrics_path: str, *, step: int, num_steps: int, phase_name: str,
                 losses: Mapping[str, float], images_per_second: float,
                 seconds_per_step: float) -> None:
    """Writes the losses to TensorBoard and metrics.jsonl, and one progress line."""
    with writer.as_default(step=step):
        for key, value in losses.items():
            tf.summary.scalar(f"loss/{key}", value)
        tf.summary.scalar("images_per_second", images_per_second)
    append_metrics(metrics_path, {"step": step, "split": "train", "phase": phase_name,
                                  "images_per_second": images_per_second, **losses})
    logging.info("step %d/%d (%.1f%%) [%s] %.1f img/s ETA %s | %s", step, num_steps,
                 100.0 * step / num_steps, phase_name, images_per_second,
                 format_duration((num_steps - step) * seconds_per_step),
                 " ".join(f"{k}={v:.4g}" for k, v in losses.items()))


def evaluate(task: Task, batches) -> dict[str, float]:
    """Mean inpainting metrics of the task's composites over evaluation batches."""
    totals: dict[str, float] = {}
    count = 0
    for batch in batches:
        outputs = task.predict(batch)
        values = metrics_lib.inpainting_metrics(outputs["composite"], outputs["target"],
                                                outputs["mask"])
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        count += 1
    if count == 0:
        raise ValueError("The evaluation data yielded no full batch.")
    return {key: value / count for key, value in totals.items()}


def train(task: Task, make_train_dataset: Callable[[int], tf.data.Dataset], config: LoopConfig,
          *, strategy: tf.distribute.Strategy | None = None,
          sample_batch: Mapping[str, np.ndarray] | None = None,
          eval_dataset: tf.data.Dataset | None = None) -> TrainResult:
    """Trains `task` until `config.num_steps`, resuming from the work directory.

    Args:
      task: the paper's task, built inside `strategy.scope()`.
      make_train_dataset: start_index -> training dataset of global batches; it
        is rebuilt at the resumed position rather than checkpointed.
      config: loop settings.
      strategy: the distribution strategy the task was built under.
      sample_batch: a fixed batch for the image grids.
      eval_dataset: a finite dataset for the periodic evaluation, or None.

    Returns:
      The final step, whether the run was interrupted, and the last losses.

    Raises:
      NonFiniteLossError: a loss became NaN or infinite (nothing is saved).
    """
    strategy = strategy or tf.distribute.get_strategy()
    prepare_workdir(config.workdir)
    metrics_path = os.path.join(config.workdir, "metrics.jsonl")

    with strategy.scope():
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        phase_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")
        task.build_optimizers()
    checkpoint = tf.train.Checkpoint(step=step_var, phase=phase_var, **task.checkpoint_items())
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir(config.workdir),
                                         max_to_keep=config.keep_checkpoints)
    if manager.latest_checkpoint:
        restore_latest(checkpoint, manager, config.workdir)
        logging.info("Resumed from %s at step %d (phase %s).", manager.latest_checkpoint,
                     int(step_var.numpy()), task.phase_name(int(phase_var.numpy())))
    start_step = int(step_var.numpy())
    current_phase = int(phase_var.numpy())  # read once; kept in Python, not read every step
    truncate_metrics_log(metrics_path, start_step)
    if start_step >= config.num_steps:
        logging.info("Already trained for %d steps (>= %d): nothing to do.", start_step,
                     config.num_steps)
        return TrainResult(step=start_step, interrupted=False, last_losses={})

    dataset = make_train_dataset(start_step * config.batch_size)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    steps_for_phase = compiled_steps(task, strategy, config.jit_compile)
    train_writer = tf.summary.create_file_writer(os.path.join(config.workdir, "train"))
    eval_writer = tf.summary.create_file_writer(os.path.join(config.workdir, "eval"))

    saved_steps = {start_step}

    def save(step: int) -> None:
        path = manager.save(checkpoint_number=step)
        saved_steps.add(step)
        logging.info("Saved checkpoint %s.", path)

    def write_samples(step: int) -> None:
        if sample_batch is None:
            return
        outputs = {k: v.numpy() for k, v in task.predict(sample_batch).items()}
        png = os.path.join(config.workdir, "samples", f"step_{step:08d}.png")
        visualize.save_sample_grid(outputs, png, title=f"step {step}")
        with train_writer.as_default(step=step):
            tf.summary.image("samples", visualize.sample_grid(outputs)[None])

    def run_eval(step: int) -> None:
        if eval_dataset is None:
            return
        values = evaluate(task, eval_dataset)
        with eval_writer.as_default(step=step):
            for key, value in values.items():
                tf.summary.scalar(key, value)
        append_metrics(metrics_path, {"step": step, "split": "eval", **values})
        logging.info("eval at step %d: %s", step,
                     " ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))

    step = start_step
    losses: dict[str, float] = {}
    window_start, window_steps = time.perf_counter(), 0
    stop = StopRequest()
    with stop.installed():
        while step < config.num_steps and not stop:
            phase = task.phase_at(step)
            if phase != current_phase:
                logging.info("Step %d: entering phase %s.", step, task.phase_name(phase))
                phase_var.assign(phase)
                current_phase = phase
            batch = next(iterator)
            losses = {k: float(v) for k, v in steps_for_phase(phase)(batch).items()}
            bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
            if bad:
                raise NonFiniteLossError(
                    f"Non-finite loss at step {step + 1}: "
                    + ", ".join(f"{k}={losses[k]}" for k in bad)
                    + f". Stopped without saving; the last good checkpoint in "
                    f"{manager.directory} is kept. Lower the learning rate, or try "
                    "--mixed_precision=none if it is on, then rerun to resume.")
            step += 1
            window_steps += 1
            step_var.assign(step)

            if step % config.log_every == 0 or step == config.num_steps:
                elapsed = time.perf_counter() - window_start
                log_progress(train_writer, metrics_path, step=step, num_steps=config.num_steps,
                             phase_name=task.phase_name(phase), losses=losses,
                             images_per_second=window_steps * config.batch_size / elapsed,
                             seconds_per_step=elapsed / window_steps)
                window_start, window_steps = time.perf_counter(), 0
            if step % config.sample_every == 0 or step == config.num_steps:
                write_samples(step)
            if step % config.eval_every == 0 or step == config.num_steps:
                run_eval(step)
            if step % config.checkpoint_every == 0 or step == config.num_steps:
                save(step)

        interrupted = bool(stop)
        if interrupted and step not in saved_steps:
            save(step)
        if interrupted:
            logging.warning("Stopped by %s at step %d; rerun the same command to resume.",
                            stop.signal_name, step)
    train_writer.flush()
    eval_writer.flush()
    return TrainResult(step=step, interrupted=interrupted, last_losses=losses)
