"""Precision and devices: the dtype policy, the CPU's instructions, tf.distribute.

`set_precision` sets Keras' global policy (and warns when bfloat16 would be
emulated on this CPU); `make_strategy` builds the --strategy's
tf.distribute.Strategy; under multi-worker training only the chief
(`is_chief`) writes the run's files.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import keras
import tensorflow as tf
from absl import logging

from common.errors import UserError


def set_precision(mixed_precision: str) -> None:
    """Sets Keras' global dtype policy: 'none' (float32), 'float16' or 'bfloat16'."""
    policies = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    if mixed_precision not in policies:
        raise UserError(f"--mixed_precision must be one of {sorted(policies)}, "
                         f"got {mixed_precision!r}.")
    keras.mixed_precision.set_global_policy(policies[mixed_precision])
    if mixed_precision == "bfloat16" and not tf.config.list_physical_devices("GPU"):
        flags = cpu_flags()
        if flags is not None and not flags & BF16_CPU_FLAGS:
            logging.warning(
                "--mixed_precision=bfloat16 on a CPU without bfloat16 instructions (none of "
                "%s in /proc/cpuinfo): its matrix products are emulated, so expect no speed-up "
                "over float32 (--mixed_precision=none).", ", ".join(sorted(BF16_CPU_FLAGS)))


# x86 instruction sets that multiply bfloat16 natively (AVX-512 BF16, AMX), and Arm's.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The instruction-set flags of the first CPU in `cpuinfo` (Linux), None where
    unknown (another OS, or no flags line)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86, Arm
                    return frozenset(value.split())
    except OSError:
        pass
    return None


STRATEGIES = ("default", "mirrored", "multi_worker")


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error}): {text!r}") from error
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise UserError('TF_CONFIG must look like {"cluster": {"worker": ["host1:port", '
                         f'"host2:port"]}}, "task": {{"type": "worker", "index": 0}}}}, got {text!r}')
    return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (logs, samples, checkpoints).

    Always, except under a multi-worker strategy, where only the chief task of
    TF_CONFIG does (`chief_task`).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return chief_task(tf_config())


def chief_task(config: Mapping) -> bool:
    """Whether a TF_CONFIG's own task is the chief: the "chief" task, or worker 0
    of a cluster without one."""
    task = config.get("task", {})
    task_type, index = task.get("type"), int(task.get("index", 0))
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and index == 0 and "chief" not in config.get("cluster", {})


def make_strategy(name: str) -> tf.distribute.Strategy:
    """'default' (one device), 'mirrored' (all local GPUs, or CPU if none), or
    'multi_worker' (every GPU of the machines in TF_CONFIG; create it before any
    other TensorFlow work, as collective ops are set up at start)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not tf_config():
            raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                             "(the cluster's workers and this process's task); see docs/multi_gpu.md.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy must be one of {list(STRATEGIES)}, got {name!r}.")


def check_batch_divides(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch; fails unless the global batch splits evenly over replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"--batch_size ({batch_size}) is the global batch and must be a "
                         f"multiple of the number of replicas ({replicas}).")
    return batch_size // replicas


def distributed_iterator(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy):
    """An iterator of per-replica batches of `dataset`'s global batches."""
    # Each global batch is split over the replicas (and workers); never shard by
    # files, which would change the data with the number of workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))
