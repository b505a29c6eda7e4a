"""What every paper's training run does, once: precision, seed, devices, data, loop.

A paper describes its input with a `PaperInput` (its resize-and-crop policy
and its masking step) and its networks with a `train_loop.Task`; `run` does
the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common import atomic
from common import data as data_lib
from common import devices
from common import flagfiles
from common import perceptual_metrics
from common import run_configs
from common import run_dir
from common import train_loop
from common.errors import UserError

SAMPLE_IMAGES = 6


@dataclasses.dataclass(frozen=True)
class PaperInput:
    """A paper's input pipeline: crop policy, and (seed, batch_size) -> masking step."""

    policy: data_lib.CropPolicy
    example_fn: Callable[[int, int], data_lib.ExampleFn]


def make_dataset(paper_input: PaperInput, data: run_configs.DataConfig, *, spec: str,
                 training: bool, batch_size: int, start_index: int = 0,
                 num_examples: int | None = None, purpose: str = "") -> tf.data.Dataset:
    """The paper's pipeline for one data spec."""
    return data_lib.make_dataset(
        spec, batch_size=batch_size, policy=paper_input.policy,
        example_fn=paper_input.example_fn(data.seed, batch_size), seed=data.seed,
        training=training, start_index=start_index, num_examples=num_examples,
        shuffle_buffer=data.shuffle_buffer, purpose=purpose)


def xla_choice(paper_name: str, config, jit_compile: bool) -> str:
    """What the log says about XLA: on or off, and whether that is the paper's default."""
    default = type(config).RUN_DEFAULTS.get("jit_compile", False)
    state = "XLA on (--jit_compile)" if jit_compile else "XLA off (--nojit_compile)"
    if jit_compile == default:
        return (f"{state}, {paper_name}'s default: the faster on a CPU "
                "(docs/performance.md)")
    return f"{state}, not {paper_name}'s default"


def sample_batch(paper_input: PaperInput, data: run_configs.DataConfig,
                 num_images: int = SAMPLE_IMAGES) -> dict[str, np.ndarray]:
    """A fixed batch for the sample grids: evaluation data, else training data."""
    spec = data.eval_data or data.train_data
    dataset = make_dataset(paper_input, data, spec=spec, training=False, batch_size=1,
                           num_examples=num_images, purpose="sample grid")
    examples = [{k: v.numpy() for k, v in batch.items()} for batch in dataset]
    if not examples:
        raise UserError(f"No image could be read from {spec!r} for the sample grids.")
    return {k: np.concatenate([e[k] for e in examples]) for k in examples[0]}


CONFIG_FILE = "config.json"


def write_paper_config(workdir: str, paper: str, config, extra: dict | None = None) -> None:
    """Records the paper and its resolved config, so the run can be loaded without flags.

    `extra` adds top-level fields (e.g. "converted_from" for released weights).
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    atomic.write_json(path, {"paper": paper, "config": dataclasses.asdict(config),
                             **(extra or {})})


def read_paper_config(workdir: str) -> tuple[str, dict]:
    """(paper name, config fields) of a work directory written by `run`."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir!r} is not a work directory of a "
                                "training run (expected config.json and checkpoints/).")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return record["paper"], record["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a run's record ({type(error).__name__}: {error}); it "
                        "should hold {\"paper\": ..., \"config\": {...}} as a training run "
                        "writes it.") from error


# Fields added to the papers' configs after runs had been written without them,
# and the value those older runs had in effect: GLCIC and DMFN padded their
# stride-2 convolutions TensorFlow's way before they padded as their references;
# Structural Inpainting's generator ended linear before it ended in the port's ReLU.
LEGACY_FIELD_VALUES = {"conv_padding": "tf_same", "output_activation": "linear"}


def with_legacy_fields(config_class, fields: dict) -> dict:
    """`fields` of an older config.json completed with what that run had in effect."""
    names = {field.name for field in dataclasses.fields(config_class)}
    missing = {k: v for k, v in LEGACY_FIELD_VALUES.items() if k in names and k not in fields}
    return {**fields, **missing}


def check_legacy_resume(workdir: str, config, recorded: dict) -> None:
    """Refuses to resume an older run with a value it was not trained with.

    `recorded` holds the config fields of the run's config.json. Without this,
    resuming a run trained with TensorFlow's padding would silently continue it
    with the other padding (the weights fit both shapes).
    """
    for name, legacy in LEGACY_FIELD_VALUES.items():
        if hasattr(config, name) and name not in recorded and getattr(config, name) != legacy:
            raise UserError(
                f"{workdir} holds a run trained with --{name}={legacy} (it was written before "
                f"that flag existed); resume it with --{name}={legacy}, or start a new "
                f"--workdir for --{name}={getattr(config, name)}.")


# Shared flags a run keeps for its whole length: the data, its order and the
# position in it (counted in batches), and the networks' dtypes.
FIXED_RUN_FLAGS = ("train_data", "batch_size", "seed", "shuffle_buffer", "mixed_precision")
# Flags that only say where things are or how the loop reports; never compared.
_PLACE_FLAGS = ("workdir",)


def _same_value(name: str, old: str, new: str) -> bool:
    if name in ("train_data", "vgg_weights", "mask_dir") and old and new and \
            os.path.exists(old) and os.path.exists(new):
        return os.path.realpath(old) == os.path.realpath(new)
    return old == new


def resume_changes(workdir: str, paper: str, config,
                   flag_lines: tuple[str, ...]) -> list[str]:
    """What differs from the run in `workdir`; refuses what a run cannot change.

    A run may be resumed with other learning rates and optimizer settings
    (the paper Config's RESUMABLE fields), another length, other logging,
    checkpoint and evaluation settings. Other fields of the paper's Config and
    FIXED_RUN_FLAGS are refused, before any file of the run is touched. A work
    directory without a checkpoint has nothing to keep and accepts anything.

    Returns:
      One "--name: old -> new" line per accepted change, for the log.
    """
    if not run_dir.has_checkpoint(workdir):
        return []
    refused, accepted = [], []
    if os.path.exists(os.path.join(workdir, CONFIG_FILE)):
        recorded_paper, fields = read_paper_config(workdir)
        if recorded_paper != paper:
            raise UserError(f"--workdir {workdir} holds a {recorded_paper} run, not {paper}: "
                            f"use that paper's train.py, or another --workdir.")
        check_legacy_resume(workdir, config, fields)
        recorded = with_legacy_fields(type(config), fields)
        current = json.loads(json.dumps(dataclasses.asdict(config)))
        resumable = getattr(type(config), "RESUMABLE", ())
        for name in sorted(current.keys() & recorded.keys()):
            old, new = recorded[name], current[name]
            if old != new and not _same_value(name, str(old), str(new)):
                (accepted if name in resumable else refused).append(
                    f"--{name}: {old} -> {new}")
    old_flags = flagfiles.read_flagfile(os.path.join(workdir, "flags.cfg"))
    new_flags = flagfiles.parse_flag_lines(flag_lines)
    config_names = {f.name for f in dataclasses.fields(config)}
    for name in sorted(old_flags.keys() & new_flags.keys() - config_names - set(_PLACE_FLAGS)):
        old, new = old_flags[name], new_flags[name]
        if not _same_value(name, old, new):
            (refused if name in FIXED_RUN_FLAGS else accepted).append(f"--{name}: {old} -> {new}")
    if refused:
        raise UserError(
            f"--workdir {workdir} holds a run trained with other settings ("
            + "; ".join(refused) + "). Resume it with --flagfile="
            f"{os.path.join(workdir, 'flags.cfg')} (learning rates, lengths, logging and "
            "evaluation may change), or use a new --workdir.")
    return accepted


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras and sums gradients in a fixed order
    (`sum_gradients_in_fixed_order`); with `deterministic`, also makes every op
    deterministic (TensorFlow then raises for an op that has no deterministic
    kernel instead of running it nondeterministically)."""
    keras.utils.set_random_seed(seed)
    sum_gradients_in_fixed_order()
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def sum_gradients_in_fixed_order() -> bool:
    """Turns off grappler's memory optimizer for the tf.functions traced from now on.

    Where a tensor feeds three or more terms of a loss (Structural Inpainting's
    prediction: reconstruction, feature and adversarial losses), its gradient
    is an AddN of three or more inputs. The memory optimizer's scheduling pass
    rewrites such an AddN into AssignAdds that run as their inputs arrive, so
    the sum's order, and its last bits, change from run to run, even under
    `enable_op_determinism`. It does so only when its static estimate of the
    step's peak memory exceeds 80% of the RAM free when the function is
    optimized, which is why it depends on what else the machine is doing. The
    pass saves memory only on a machine about to run out of it.

    No public API sets this option (`tf.config.optimizer` has no toggle for it),
    so the eager context's base config is changed; returns False, with a
    warning, where this TensorFlow version has no such config.
    """
    try:
        from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
        from tensorflow.python.eager import context
        ctx = context.context()
        config = config_pb2.ConfigProto()
        if ctx._config is not None:
            config.CopyFrom(ctx._config)
        config.graph_options.rewrite_options.memory_optimization = (
            rewriter_config_pb2.RewriterConfig.NO_MEM_OPT)
        ctx._config = config
        ctx._thread_local_data.function_call_options = None  # rebuilt from the config
    except (ImportError, AttributeError) as error:
        logging.warning("Could not turn off grappler's memory optimizer (%s): gradients with "
                        "three or more terms may not repeat bit for bit.", error)
        return False
    return True


def run(paper, config, run_config: run_configs.RunConfig) -> train_loop.TrainResult:
    """Trains a paper's task as configured; resumes from the work directory.

    Args:
      paper: the paper's record (reproductions.papers.Paper): its task builder,
        input pipeline and optional `prepare` hook.
      config: the paper's config (a dataclass), recorded as workdir/config.json.
      run_config: the shared settings.
    """
    # First: a multi-worker strategy must exist before any other TensorFlow work.
    strategy = devices.make_strategy(run_config.strategy)
    if (run_config.loop.jit_compile and run_config.strategy == "multi_worker"
            and not tf.config.list_physical_devices("GPU")):
        # XLA cannot compile the cross-worker collectives on CPU devices.
        logging.warning("XLA off: XLA does not compile collectives across CPU workers.")
        run_config = dataclasses.replace(
            run_config, loop=dataclasses.replace(run_config.loop, jit_compile=False))
    devices.check_batch_divides(run_config.data.batch_size, strategy)
    workdir = run_config.loop.workdir
    chief = devices.is_chief(strategy)
    # Ctrl-C or SIGTERM from here on sets a flag that start-up checks between its
    # stages and the loop checks between steps: it is never lost in a library call
    # that swallows KeyboardInterrupt, as it could be under load.
    stop = train_loop.StopRequest()
    with stop.installed(), run_dir.locked(workdir) if chief else contextlib.nullcontext():
        changes = (resume_changes(workdir, paper.name, config, run_config.flag_lines)
                   if chief else [])
        devices.set_precision(run_config.mixed_precision)
        set_determinism(run_config.data.seed, run_config.deterministic)
        # Built after the precision policy and the seed are set.
        with strategy.scope():
            task = paper.build_task(config)
        logging.info("%s (%s), trainable parameters: %s", paper.title, paper.describe(config),
                     paper.parameter_counts(task))
        stop.raise_if_requested()
        data = run_config.data
        if paper.prepare is not None:
            paper.prepare(task, config, data, run_dir.has_checkpoint(workdir))
        paper_input = paper.paper_input(config)

        def make_train_dataset(start_index: int) -> tf.data.Dataset:
            return make_dataset(paper_input, data, spec=data.train_data, training=True,
                                batch_size=data.batch_size, start_index=start_index)

        def record_run(start_step: int) -> None:
            # Only now, with the checkpoint restored into these networks, are the
            # run's files rewritten: a refused resume leaves them as they were.
            if start_step and changes:
                logging.info("Resuming with changed flags: %s.", "; ".join(changes))
            write_paper_config(workdir, paper.name, config)
            if run_config.flag_lines:
                flagfiles.write_flagfile(os.path.join(workdir, "flags.cfg"),
                                            run_config.flag_lines)

        eval_dataset = eval_lpips = None
        if data.eval_data:
            eval_dataset = make_dataset(paper_input, data, spec=data.eval_data, training=False,
                                        batch_size=data.batch_size,
                                        num_examples=data.eval_examples)
            if chief and run_config.lpips is not None:
                eval_lpips = perceptual_metrics.load_networks(run_config.lpips).lpips
        logging.info("Training %s; %s.", type(task).__name__,
                     xla_choice(paper.name, config, run_config.loop.jit_compile))
        stop.raise_if_requested()
        try:
            return train_loop.train(task, make_train_dataset, run_config.loop,
                                    strategy=strategy, sample_batch=sample_batch(paper_input, data),
                                    eval_dataset=eval_dataset, on_start=record_run,
                                    eval_lpips=eval_lpips, stop=stop)
        except tf.errors.DataLossError:
            # TensorFlow names neither the file nor the record: find them.
            located = data_lib.locate_data_loss({"--train_data": data.train_data,
                                                 "--eval_data": data.eval_data})
            if located is None:
                raise
            raise located from None
