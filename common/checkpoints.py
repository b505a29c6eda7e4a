"""A run's checkpoints: the work directory's checks, resume, and saves.

`Checkpoints` restores the newest readable checkpoint of a work directory (a
damaged one is set aside by `common.run_dir`), keeps the learning rates the
flags give, and saves through `tf.train.CheckpointManager`, whose data files
are written before the `checkpoint` index is replaced atomically. Before
training, the disk must hold the checkpoints kept (`check_free_space`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
from typing import TYPE_CHECKING, Mapping

import keras
import tensorflow as tf
from absl import logging

from common import run_dir
from common.errors import UserError

if TYPE_CHECKING:
    from common import train_loop


def prepare_workdir(workdir: str) -> None:
    """Creates the work directory and fails early if it cannot be written."""
    try:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{socket.gethostname()}.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise OSError(f"--workdir {workdir!r} is not writable: {error}") from error


DISK_MARGIN_BYTES = 100 * 2**20  # logs, sample grids, TensorBoard events


def checkpoint_bytes(items: Mapping[str, object]) -> int:
    """Size of one checkpoint of these models and optimizers (their variables)."""
    seen, total = set(), 0
    for item in items.values():
        for variable in getattr(item, "variables", []):
            if id(variable) not in seen:
                seen.add(id(variable))
                total += math.prod(variable.shape) * tf.as_dtype(variable.dtype).size
    return total


def check_free_space(directory: str, one_checkpoint: int, keep: int, milestones: int = 0) -> None:
    """Fails at start unless the disk holds the `keep` checkpoints of a run (plus one in
    flight, written before the oldest is deleted), counting those already there, and the
    `milestones` still to be kept (--milestone_every)."""
    existing = sum(os.path.getsize(os.path.join(directory, name))
                   for name in (os.listdir(directory) if os.path.isdir(directory) else [])
                   if os.path.isfile(os.path.join(directory, name)))
    needed = (max(0, (keep + 1) * one_checkpoint - existing) + milestones * one_checkpoint
              + DISK_MARGIN_BYTES)
    free = shutil.disk_usage(os.path.dirname(directory.rstrip("/")) or ".").free
    if free < needed:
        raise OSError(
            f"--workdir: not enough free disk space for the checkpoints: {free / 2**20:.0f} MB "
            f"free, {needed / 2**20:.0f} MB needed ({keep + 1} checkpoints of "
            f"{one_checkpoint / 2**20:.0f} MB, from --keep_checkpoints={keep}, "
            + (f"{milestones} more from --milestone_every, " if milestones else "") + "plus "
            f"{DISK_MARGIN_BYTES / 2**20:.0f} MB for logs). Free some space, lower "
            "--keep_checkpoints, or choose another --workdir.")


def milestones_to_come(config: "train_loop.LoopConfig") -> int:
    """Checkpoints --milestone_every will still keep in this run (those already kept are
    on the disk)."""
    if not config.milestone_every:
        return 0
    kept = run_dir.complete_steps(run_dir.milestone_dir(config.workdir))
    return max(0, config.num_steps // config.milestone_every - len(kept))


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str, workdir: str) -> None:
    """Restores a checkpoint, or explains why it does not fit the networks."""
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise UserError(
            f"The checkpoint {path} does not match the networks built from "
            f"the current flags (was the run started with other settings?). Relaunch it with "
            f"--flagfile={os.path.join(workdir, 'flags.cfg')}, or use a new --workdir. "
            f"Details: {error}") from error


def _learning_rate_variables(items: Mapping[str, object]) -> dict[str, tf.Variable]:
    """name -> learning-rate variable of each optimizer with a constant learning rate
    (a schedule is a function of the step and has none)."""
    found = {}
    for name, item in items.items():
        optimizer = getattr(item, "inner_optimizer", item)  # under a loss-scale optimizer
        if isinstance(optimizer, keras.optimizers.Optimizer):
            rate = getattr(optimizer, "_learning_rate", None)
            if isinstance(rate, keras.Variable):
                found[name] = rate
    return found


def restore_learning_rates(variables: Mapping[str, tf.Variable],
                           configured: Mapping[str, float]) -> None:
    """Puts back the configured learning rates after a restore, logging each change.

    A checkpoint stores each optimizer's learning rate, so restoring it would
    silently undo a learning rate changed on resume (for example lowered after
    a non-finite loss).
    """
    for name, variable in variables.items():
        restored = float(variable.numpy())
        if not math.isclose(restored, configured[name], rel_tol=1e-6):
            logging.info("%s: learning rate %g from the flags (the checkpoint had %g).", name,
                         configured[name], restored)
            variable.assign(configured[name])


class Checkpoints:
    """The run's checkpoint: step, phase, and the task's items; resumed, then saved.

    Under a multi-worker strategy every worker joins each save (variables are
    read collectively), but only the chief writes into the work directory; the
    others save into a scratch folder that is then deleted.
    """

    def __init__(self, task: "train_loop.Task", config: "train_loop.LoopConfig", strategy: tf.distribute.Strategy,
                 chief: bool):
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.phase = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")
            task.build_optimizers()
        self.items = task.checkpoint_items()
        self.checkpoint = tf.train.Checkpoint(step=self.step, phase=self.phase, **self.items)
        self.chief = chief
        self.directory = (run_dir.checkpoint_dir(config.workdir) if chief else
                          os.path.join(config.workdir, "worker_scratch",
                                       f"{socket.gethostname()}.{os.getpid()}"))
        # Found (and on the chief repaired) before the manager reads the index.
        self.latest = run_dir.newest_readable(run_dir.checkpoint_dir(config.workdir),
                                              repair=chief)
        damaged = run_dir.damaged_files(run_dir.checkpoint_dir(config.workdir))
        if chief and self.latest is None and damaged:
            # Starting again from step 0 would overwrite the run's history.
            where = os.path.join(run_dir.checkpoint_dir(config.workdir), run_dir.DAMAGED)
            raise UserError(
                f"--workdir {config.workdir} has no readable checkpoint: its checkpoints "
                f"({len(damaged)} files) are unreadable and were set aside in {where}. Nothing "
                "was trained or rewritten. To train this run again from step 0, delete "
                f"{where} and {os.path.join(config.workdir, run_dir.METRICS_FILE)}, or give a "
                "new --workdir.")
        if chief:
            check_free_space(self.directory, checkpoint_bytes(self.items),
                             config.keep_checkpoints, milestones_to_come(config))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=config.keep_checkpoints)
        self.milestone_every = config.milestone_every
        self.milestones = run_dir.milestone_dir(config.workdir)
        self.saved_steps: set[int] = set()

    def resume(self, task: "train_loop.Task", workdir: str) -> tuple[int, int]:
        """Restores the newest readable checkpoint, if any, keeping the configured
        learning rates; returns (step, phase) to start from."""
        if self.latest:
            learning_rates = _learning_rate_variables(self.items)
            configured = {name: float(v.numpy()) for name, v in learning_rates.items()}
            restore_checkpoint(self.checkpoint, self.latest, workdir)
            restore_learning_rates(learning_rates, configured)
            logging.info("Resumed from %s at step %d (phase %s).", self.latest,
                         int(self.step.numpy()), task.phase_name(int(self.phase.numpy())))
        start = int(self.step.numpy())
        self.saved_steps.add(start)
        return start, int(self.phase.numpy())

    def save(self, step: int) -> None:
        try:
            path = self.manager.save(checkpoint_number=step)
        except tf.errors.OpError as error:
            # The index still names the previous checkpoint, which stays usable.
            raise OSError(f"Could not write the checkpoint of step {step} to {self.directory} "
                          f"(disk full?): {error.message}. The previous checkpoint is kept; "
                          "free some space and rerun to resume.") from error
        self.saved_steps.add(step)
        if self.chief:
            logging.info("Saved checkpoint %s.", path)
            if self.milestone_every and step and step % self.milestone_every == 0:
                run_dir.keep_milestone(self.directory, step, self.milestones)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
            with contextlib.suppress(OSError):  # the last worker out removes the folder
                os.rmdir(os.path.dirname(self.directory))

    def kept_advice(self) -> str:
        """What a run stopped by a non-finite loss keeps, and what to do next."""
        if max(self.saved_steps) > 0 or self.latest:
            return (f"the last good checkpoint in {self.manager.directory} (step "
                    f"{max(self.saved_steps)}) is kept. Lower the learning rate (it takes "
                    "effect on resume), or try --mixed_precision=none if it is on, then "
                    "rerun to resume.")
        return ("no checkpoint had been saved yet. Lower the learning rate, or try "
                "--mixed_precision=none if it is on, and start again.")
