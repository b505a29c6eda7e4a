"""A run's work directory: one training process at a time, and no history lost.

A work directory holds `checkpoints/` (TensorFlow checkpoints `ckpt-STEP.*`
and their index file `checkpoint`), `metrics.jsonl` (one JSON record per
logged step), `config.json` and `flags.cfg` (what the run was trained with).

- Checkpoints are found from the files on disk, not only from the index: a
  damaged index is rebuilt, and a damaged newest checkpoint is named, moved to
  `checkpoints/damaged/` and the previous one used, so a fault never sends a
  run back to step 0.
- `metrics.jsonl` keeps every record up to the restored step; a torn line (a
  disk that filled during an append) is dropped with a warning.
- `train.lock` holds an advisory lock (`flock`) for as long as a training
  process runs; the kernel releases it when the process ends in any way, even
  SIGKILL, so a lock is never stale. It is not reliable on network file systems
  that do not support `flock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time

from absl import logging
import tensorflow as tf

from common import atomic
from common.errors import UserError

CHECKPOINTS = "checkpoints"
MILESTONES = "milestones"
DAMAGED = "damaged"
LOCK_FILE = "train.lock"
METRICS_FILE = "metrics.jsonl"
_CHECKPOINT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")


class WorkdirBusyError(UserError):
    """Another process is training in the same work directory."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, CHECKPOINTS)


def checkpoint_files(directory: str) -> dict[int, list[str]]:
    """step -> names of that checkpoint's files in `directory` (index and data shards)."""
    files: dict[int, list[str]] = {}
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            match = _CHECKPOINT_FILE.match(name)
            if match:
                files.setdefault(int(match.group(1)), []).append(name)
    return files


def _is_complete(names: list[str]) -> bool:
    """Whether the files include the index and every data shard it expects."""
    shards = [n for n in names if ".data-" in n]
    if not any(n.endswith(".index") for n in names) or not shards:
        return False
    expected = int(shards[0].rsplit("-of-", 1)[1])
    return len(shards) == expected


def complete_steps(directory: str) -> list[int]:
    """Sorted steps of the checkpoints in `directory` whose files are all there."""
    return sorted(s for s, names in checkpoint_files(directory).items() if _is_complete(names))


def latest_step(workdir: str) -> int:
    """Step of the newest complete checkpoint on disk (index and data files), 0 if none.

    Cheap (no file is read); `newest_readable` also checks the contents.
    """
    return max(complete_steps(checkpoint_dir(workdir)), default=0)


def milestone_dir(workdir: str) -> str:
    return os.path.join(workdir, MILESTONES)


def keep_milestone(directory: str, step: int, milestones: str) -> None:
    """Keeps checkpoint `step` of `directory` in `milestones` as hard links (a copy where
    the file system has none), data files first and the index last, so a milestone with
    an index is whole. --keep_checkpoints later deletes only the links in `directory`."""
    os.makedirs(milestones, exist_ok=True)
    names = checkpoint_files(directory)[step]
    for name in sorted(names, key=lambda n: n.endswith(".index")):
        source, target = os.path.join(directory, name), os.path.join(milestones, name)
        temporary = f"{target}.tmp{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)


def kept_steps(workdir: str) -> list[int]:
    """Sorted steps of the whole checkpoints a run keeps, in checkpoints/ and milestones/."""
    return sorted(set(complete_steps(checkpoint_dir(workdir)))
                  | set(complete_steps(milestone_dir(workdir))))


def checkpoint_at_step(workdir: str, step: int) -> str:
    """Prefix of the readable checkpoint of `step` in the run's checkpoints/ or
    milestones/ (--milestone_every), or a UserError naming the steps there are."""
    for directory in (checkpoint_dir(workdir), milestone_dir(workdir)):
        if step in complete_steps(directory):
            prefix = os.path.join(directory, f"ckpt-{step}")
            problem = checkpoint_problem(prefix)
            if problem is None:
                return prefix
            raise UserError(f"The checkpoint {prefix} is damaged ({problem}).")
    raise UserError(f"{workdir} has no checkpoint of step {step}; it keeps steps "
                    f"{kept_steps(workdir) or 'none'} (train with --milestone_every to keep more).")


def has_checkpoint(workdir: str) -> bool:
    """Whether the work directory holds a checkpoint to resume from (step 0 included)."""
    return bool(complete_steps(checkpoint_dir(workdir)))


def checkpoint_problem(prefix: str) -> str | None:
    """Why the checkpoint `prefix` cannot be read in full, or None if it can.

    Reads every tensor: a truncated data file is only noticed when the bytes
    that are missing are read.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError) as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return message.splitlines()[0]
    return None


def damaged_files(directory: str) -> list[str]:
    """Names of the checkpoint files set aside in `directory/damaged/`."""
    target = os.path.join(directory, DAMAGED)
    return sorted(os.listdir(target)) if os.path.isdir(target) else []


def _set_aside(directory: str, names: list[str]) -> str:
    target = os.path.join(directory, DAMAGED)
    os.makedirs(target, exist_ok=True)
    for name in names:
        os.replace(os.path.join(directory, name), os.path.join(target, name))
    return target


def rebuild_index(directory: str, steps: list[int]) -> None:
    """Rewrites the index file `checkpoint` to list these steps, newest last."""
    # Relative names, as CheckpointManager writes them: the run can be moved.
    names = [f"ckpt-{s}" for s in sorted(steps)]
    if names:
        tf.compat.v1.train.update_checkpoint_state(directory, names[-1],
                                                   all_model_checkpoint_paths=names)
    elif os.path.exists(os.path.join(directory, "checkpoint")):
        os.remove(os.path.join(directory, "checkpoint"))


def _index_steps(directory: str) -> list[int] | None:
    """Steps the index file lists, or None if it is missing or cannot be parsed."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (ValueError, tf.errors.OpError):
        return None
    if state is None:
        return None
    return sorted(int(re.search(r"ckpt-(\d+)$", p).group(1))
                  for p in state.all_model_checkpoint_paths)


def newest_readable(directory: str, *, repair: bool) -> str | None:
    """Prefix of the newest checkpoint in `directory` that reads in full, or None.

    Each damaged or incomplete newer checkpoint is named in a warning. With
    `repair` (a training run, which owns the directory), those are moved to
    `directory/damaged/` and the index is rebuilt from what is left when it does
    not list exactly the checkpoints on disk; without it (inference), nothing is
    touched.
    """
    files = checkpoint_files(directory)
    found = None
    for step in sorted(files, reverse=True):
        prefix = os.path.join(directory, f"ckpt-{step}")
        if not _is_complete(files[step]):
            problem = "files missing: only " + ", ".join(files[step])
        else:
            problem = checkpoint_problem(prefix)
        if problem is None:
            found = step
            break
        if repair:
            moved_to = _set_aside(directory, files.pop(step))
            logging.warning("Checkpoint %s is damaged (%s); moved it to %s and using the one "
                            "before it.", prefix, problem, moved_to)
        else:
            logging.warning("Checkpoint %s is damaged (%s); using the one before it.", prefix,
                            problem)
    if repair:
        on_disk = complete_steps(directory)
        listed = _index_steps(directory)
        if listed != on_disk and (listed is not None or on_disk):
            logging.warning("The checkpoint index %s listed %s; rebuilt it from the files on "
                            "disk: %s.", os.path.join(directory, "checkpoint"),
                            "nothing readable" if listed is None else listed, on_disk)
            rebuild_index(directory, on_disk)
    return None if found is None else os.path.join(directory, f"ckpt-{found}")


# ----------------------------------------------------------------------------
# metrics.jsonl


def read_metrics(path: str) -> list[dict]:
    """The records of a metrics log; lines that are not whole records are dropped
    with a warning (a torn last line after a full disk or a crash)."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path, errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                    raise ValueError("not a record with an integer 'step'")
            except ValueError as error:
                logging.warning("%s line %d is not a whole record (%s); dropped it.", path,
                                number, error)
                continue
            records.append(record)
    return records


def truncate_metrics(path: str, last_step: int) -> None:
    """Keeps the records up to `last_step` (later steps are recomputed after a resume);
    a log with nothing after `last_step` and no torn line is left untouched."""
    if not os.path.exists(path):
        return
    records = read_metrics(path)
    kept = [r for r in records if r["step"] <= last_step]
    with open(path, errors="replace") as f:
        whole_lines = sum(1 for line in f if line.strip())
    if len(kept) == len(records) == whole_lines:
        return
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def append_metrics(path: str, record: dict) -> None:
    """Appends one record; a torn previous line (no newline) is ended first."""
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(record) + "\n").encode())


# ----------------------------------------------------------------------------
# One process per work directory


def _describe_holder(path: str) -> str:
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            holder = json.loads(f.read() or "{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
        return f"process {holder['pid']} on {holder['host']}, since {started}"
    return "another process"


@contextlib.contextmanager
def locked(workdir: str):
    """Holds the work directory's lock while the block runs; refuses a second process."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkdirBusyError(
            f"--workdir {workdir} is in use: {_describe_holder(path)} is training there. "
            "Wait for it to finish or stop it (Ctrl-C saves and exits), or choose another "
            "--workdir.") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.time()}).encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

