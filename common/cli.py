"""The command line of every tool: shared flags, --help, flag files, one-line errors.

Flags are read only here and in the scripts (train.py, the tools, the
benchmarks): `define_paper_flags(Config)` defines the shared flags and one flag
per field of the paper's Config (common.config_flags), and the parsed values
become plain config objects (`config_flags.from_flags`,
`run_config_from_flags()`), which the library code takes. `train_main` is the
body of every paper's train.py; `run_app` starts any tool.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
from typing import Callable

from absl import app
from absl import flags

from common import config_flags
from common import data as data_lib
from common import errors
from common import experiment
from common import flagfiles
from common import perceptual_metrics
from common import train_loop
from common import vgg
from common.errors import UserError
from common.run_configs import MAX_SEED, DataConfig, RunConfig


def define_common_flags(values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the flags every reproduction understands."""
    into = {"flag_values": values}
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples; an "
                        "existing run there is resumed.", **into)
    flags.DEFINE_string("train_data", "sample", "Training data: 'sample' (bundled photos), a "
                        "folder of images, a TFRecord pattern, or 'tfds:NAME[:SPLIT]'.", **into)
    flags.DEFINE_string("eval_data", "", "Evaluation data, same forms as --train_data; empty = "
                        "no periodic evaluation (sample grids then use --train_data).", **into)
    flags.DEFINE_integer("eval_examples", 64, "Examples used from --eval_data.", **into)
    flags.DEFINE_integer("batch_size", 64, "Global batch size.", **into)
    flags.DEFINE_integer("num_steps", 100_000, "Training length of the configuration.", **into)
    flags.DEFINE_integer("max_steps", None, "If set, overrides --num_steps.", **into)
    flags.DEFINE_integer("seed", 0, "Seeds the initial weights, shuffling, crops and masks.",
                         **into)
    flags.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA. Each paper "
                         "sets its default: on where XLA makes its step faster on a CPU.",
                         **into)
    flags.DEFINE_enum("mixed_precision", "none", ["none", "float16", "bfloat16"],
                      "Mixed precision: float16 (with loss scaling) or bfloat16.", **into)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy: one device; all local GPUs; or all GPUs of "
                      "the machines listed in the TF_CONFIG environment variable. "
                      "--batch_size is the global batch, split evenly over the replicas.", **into)
    flags.DEFINE_integer("steps_per_loop", 10, "Train steps per compiled call (a host round "
                         "trip only every so many steps; calls also end at log, sample, "
                         "eval and checkpoint steps).", **into)
    flags.DEFINE_boolean("deterministic", False, "Deterministic ops (tf.config.experimental."
                         "enable_op_determinism): the same seed gives the same weights, at "
                         "some cost in speed on GPU.", **into)
    flags.DEFINE_integer("log_every", 50, "Steps between scalar logs and progress lines.", **into)
    flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", **into)
    flags.DEFINE_integer("sample_every", 500, "Steps between sample image grids.", **into)
    flags.DEFINE_integer("eval_every", 1000, "Steps between evaluations on --eval_data.", **into)
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept in workdir/checkpoints.", **into)
    flags.DEFINE_integer("milestone_every", 0, "Also keep the checkpoint of every multiple of "
                         "this many steps in workdir/milestones/ (hard links, never deleted), "
                         "to score the run's progress afterwards with --method=PAPER:WORKDIR@STEP "
                         "(a multiple of --checkpoint_every); 0: none.", **into)
    flags.DEFINE_integer("shuffle_buffer", 2048, "Record shuffle buffer for TFRecord/tfds data.",
                         **into)
    flags.DEFINE_boolean("eval_lpips", True, "Add LPIPS to the periodic evaluation on "
                         "--eval_data when its weight files are found (see --lpips_net).", **into)
    perceptual_metrics.define_lpips_flags(values)
    flags.DEFINE_boolean("dry_run", False, "Build the networks, print their trainable parameter "
                         "counts as one JSON line, and exit.", **into)


def define_paper_flags(config_cls, values: flags.FlagValues = flags.FLAGS) -> None:
    """The shared flags, then one per field of a paper's `Config`.

    `config_cls.RUN_DEFAULTS` (batch size and training length: the paper's
    schedule; and whether XLA pays for its step) replaces the shared flags' defaults.
    """
    define_common_flags(values)
    config_flags.define_flags(config_cls, values)
    for name, value in config_cls.RUN_DEFAULTS.items():
        values.set_default(name, value)


def run_config_from_flags(values: flags.FlagValues = flags.FLAGS) -> RunConfig:
    """Builds the run configuration from parsed flags, validating them."""
    if not values.workdir:
        raise UserError("--workdir is required (where checkpoints and logs go).")
    errors.check_positive(values, ("batch_size", "num_steps", "max_steps", "eval_examples",
                                   "log_every", "checkpoint_every", "sample_every", "eval_every",
                                   "keep_checkpoints", "shuffle_buffer", "steps_per_loop"))
    if not 0 <= values.seed <= MAX_SEED:
        raise UserError(f"--seed must be an integer in [0, {MAX_SEED}] (NumPy's and Keras' "
                        f"range), got {values.seed}.")
    for name in ("train_data", "eval_data"):
        if name == "train_data" or values[name].value:
            try:
                data_lib.check_data_spec(values[name].value)
            except (ValueError, OSError) as error:
                raise UserError(f"--{name}: {error}") from error
    if values.eval_examples < values.batch_size and values.eval_data:
        raise UserError(
            f"--eval_examples ({values.eval_examples}) must be at least --batch_size "
            f"({values.batch_size}): evaluation uses whole batches.")
    loop = train_loop.LoopConfig(
        workdir=values.workdir,
        num_steps=values.max_steps or values.num_steps,
        batch_size=values.batch_size,
        log_every=values.log_every,
        checkpoint_every=values.checkpoint_every,
        sample_every=values.sample_every,
        eval_every=values.eval_every,
        keep_checkpoints=values.keep_checkpoints,
        milestone_every=values.milestone_every,
        jit_compile=values.jit_compile,
        steps_per_loop=values.steps_per_loop)
    data = DataConfig(train_data=values.train_data, eval_data=values.eval_data,
                      eval_examples=values.eval_examples, batch_size=values.batch_size,
                      seed=values.seed, shuffle_buffer=values.shuffle_buffer)
    lpips = (perceptual_metrics.config_from_flags(values, lpips_only=True)
             if values.eval_data else None)
    return RunConfig(loop=loop, data=data, mixed_precision=values.mixed_precision,
                     strategy=values.strategy, deterministic=values.deterministic,
                     lpips=lpips, flag_lines=resolved_flag_lines(values))


# Flags of these modules are absl's or TensorFlow's own, not the run's.
_FOREIGN_MODULE_PREFIXES = ("absl", "tensorflow", "keras", "tensorboard", "tensorflow_datasets")


def resolved_flag_lines(values: flags.FlagValues = flags.FLAGS) -> tuple[str, ...]:
    """The run's flags as sorted "--name=value" lines (absl's and TensorFlow's left out).

    Booleans are written "--name=true|false" (absl reads that form too), so every
    line names its flag.
    """
    lines = []
    for module, module_flags in values.flags_by_module_dict().items():
        if module.startswith(_FOREIGN_MODULE_PREFIXES):
            continue
        for flag in module_flags:
            if flag.name in ("flagfile", "dry_run"):
                continue
            if isinstance(flag, flags.BooleanFlag):
                lines.append(f"--{flag.name}={'true' if flag.value else 'false'}")
            elif flag.serialize():
                lines.append(flag.serialize())
    return tuple(sorted(set(lines)))


@contextlib.contextmanager
def user_errors():
    """Turns the errors a user can fix into one clear line and exit code 1.

    Bad flag values, missing or unreadable data, an unwritable work directory,
    a mismatched checkpoint, a non-finite loss: the message says what to do,
    so a traceback would only bury it. Any other exception, a plain ValueError
    included, is a bug of the suite and keeps its traceback.
    """
    try:
        yield
    except (UserError, OSError, train_loop.NonFiniteLossError) as error:
        message = str(error)
        filename = getattr(error, "filename", None)
        if filename and str(filename) not in message:
            message = f"{filename}: {message}"  # "No space left on device" says not where
        print(f"error: {message}", file=sys.stderr)  # once: absl would log it a second time
        sys.exit(1)


def train_main(argv: list[str], paper) -> int:
    """The body of every paper's train.py: `--dry_run` counts parameters, else train.

    Args:
      argv: what absl leaves of the command line (only the program name).
      paper: the paper's record (reproductions.papers.Paper), whose Config
        fields are the flags of `define_paper_flags`.

    Returns:
      The exit code: 0, or 130 after Ctrl-C / SIGTERM (the run resumes).
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with user_errors():
        config = config_flags.from_flags(paper.config)
        if flags.FLAGS.dry_run:
            task = paper.build_task(vgg.without_weights(config))
            print(json.dumps(paper.parameter_counts(task)))
            return 0
        result = experiment.run(paper, config, run_config_from_flags())
    return 130 if result.interrupted else 0


HELP_ARGUMENTS = ("-h", "-help", "--help", "-?", "--helpshort")


def help_text(doc: str, flag_modules, values: flags.FlagValues = flags.FLAGS) -> str:
    """`doc`, then the flags defined in each of `flag_modules` (module names): the
    first module's as "flags:", each other's under "flags of MODULE:"."""
    sections = [textwrap.dedent(doc or "").strip()]
    for index, module in enumerate(flag_modules):
        # module_help's first line is the module's name (e.g. "__main__:"): retitled.
        _, _, listing = values.module_help(module).strip("\n").partition("\n")
        if listing:
            sections += ["", "flags:" if index == 0 else f"flags of {module}:", listing]
    sections += ["", "--flagfile=FILE reads flags from a file. --helpfull lists every flag, "
                     "TensorFlow's and absl's included."]
    return "\n".join(sections)


def run_app(main: Callable, doc: str, *flag_modules: str) -> None:
    """absl's `app.run(main)`, with a `--help` that shows this tool's own flags.

    absl's --help lists only the flags of the `__main__` module (none for a
    console script such as `inpaint`, not the shared --workdir or
    --train_data for a train.py) and exits with status 1. Here --help, -h and
    --helpshort print `doc` and the flags of `flag_modules`, then exit 0.
    """
    if any(argument in HELP_ARGUMENTS for argument in sys.argv[1:]):
        print(help_text(doc, flag_modules))
        sys.exit(0)
    try:
        argv = expand_flagfiles(sys.argv)
    except UserError as error:
        sys.exit(f"error: {error}")
    try:
        app.run(main, argv=argv)
    except KeyboardInterrupt:
        # Ctrl-C before a run's own handler is installed (start-up, loading data):
        # nothing half-written is left, so one line says so. Training itself stops
        # at its next call boundary and saves (common.train_loop.StopRequest).
        print("error: interrupted (Ctrl-C); rerun the command (a training run resumes from "
              "its last checkpoint).", file=sys.stderr)
        sys.exit(130)


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE_PREFIXES = ("--flagfile=", "-flagfile=")


def find_flagfile(path: str, root: str = REPOSITORY) -> str:
    """`path` as given (from the working directory), else from the repository root.

    Config files include their base as `--flagfile=reproductions/...`, written
    from the repository root, so a command run from elsewhere still finds it.
    """
    path = os.path.expanduser(path)
    for candidate in (path, os.path.join(root, path)):
        if os.path.isfile(candidate):
            return candidate
    where = "" if os.path.isabs(path) else f" (looked in {os.getcwd()} and {root})"
    raise UserError(f"--flagfile={path}: no such file{where}.")


def flagfile_lines(path: str, root: str = REPOSITORY, stack: tuple = ()) -> list[str]:
    """The flags of a flagfile as absl reads them (blank lines and lines starting
    with # or // skipped), nested --flagfile lines expanded in place."""
    path = find_flagfile(path, root)
    if os.path.realpath(path) in stack:
        raise UserError(f"--flagfile={path} includes itself (through {' -> '.join(stack)}).")
    lines = []
    for line in flagfiles.read_text_lines(path, "--flagfile="):
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        line = flagfiles.unquote_flag_line(line)
        if line.startswith(FLAGFILE_PREFIXES):
            lines += flagfile_lines(line.split("=", 1)[1], root,
                                    (*stack, os.path.realpath(path)))
        else:
            lines.append(line)
    return lines


def expand_flagfiles(argv: list[str], root: str = REPOSITORY) -> list[str]:
    """argv with every --flagfile=PATH replaced by the flags it holds, in place, so
    that later arguments still override them (absl's order).

    absl opens flagfiles, nested ones included, from the working directory only;
    here each path is also looked up from the repository root (`find_flagfile`).
    """
    expanded, arguments = [argv[0]], iter(argv[1:])
    for argument in arguments:
        if argument in ("--flagfile", "-flagfile"):
            argument = f"--flagfile={next(arguments, '')}"
        if argument.startswith(FLAGFILE_PREFIXES):
            expanded += flagfile_lines(argument.split("=", 1)[1], root)
        elif argument == "--":
            expanded += [argument, *arguments]
        else:
            expanded.append(argument)
    return expanded
