"""The registry of reproductions: each paper's contract, and the tools' --paper and --config.

Every paper folder declares one `Paper` record in its `paper.py`, and PAPERS below
lists the folders: training, `inpaint`, `inpaint-eval`, export, the benchmarks and
the tests read a paper only through its record, so adding a paper is a new folder
plus one name here (the recipe is in reproductions/README.md).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
import platform
import sys
from typing import Callable

from absl import flags

from common.errors import UserError

# The registry: folder names under reproductions/, each with a paper.py.
PAPERS = ("context_encoder", "glcic", "structural_inpainting", "dmfn")
REPRODUCTIONS = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class Paper:
    """What the suite's tools need of a reproduction.

    Attributes:
      name: the folder name under reproductions/ (also the --method prefix).
      title: the paper, for logs and tables.
      config: the paper's Config dataclass; its `option` fields are the flags of
        train.py (common.config_flags), RUN_DEFAULTS its batch size, length and XLA default.
      build_task: Config -> train_loop.Task (the networks, optimizers, steps).
      parameter_counts: Task -> {"generator_params": N, "discriminator_params": M}.
      paper_input: Config -> experiment.PaperInput (crop policy and masking step).
      describe: Config -> a few words on the variant being trained, for the log
        line that opens a run.
      size_policy: how inference fits a photo: ("resize", side) for networks of
        one input size, ("pad", multiple) for fully convolutional ones.
      postprocess: (images, composites, masks) batches in [0, 1] -> blended
        composites, run outside the graph after the network (GLCIC's fast
        marching + Poisson blending); None for none.
      prepare: optional (task, config, data config, resuming) hook run before
        training, e.g. to compute statistics of the data that a new run stores
        in its checkpoint (GLCIC's mean pixel).
      convert_released: optional path of the authors' released weights ->
        (Config, task holding them, fields for config.json); its folder's
        convert.py. None when the authors released none.
    """

    name: str
    title: str
    config: type
    build_task: Callable
    parameter_counts: Callable
    paper_input: Callable
    describe: Callable
    size_policy: tuple[str, int]
    postprocess: Callable | None = None
    prepare: Callable | None = None
    convert_released: Callable | None = None

    @classmethod
    def from_train_lib(cls, train_lib, **fields) -> "Paper":
        """A record whose config and functions are the paper's train_lib's own names
        (Config, build_task, parameter_counts, paper_input, describe); `fields`
        gives the rest (name, title, size_policy, ...)."""
        return cls(config=train_lib.Config, build_task=train_lib.build_task,
                   parameter_counts=train_lib.parameter_counts,
                   paper_input=train_lib.paper_input, describe=train_lib.describe, **fields)

    @property
    def fully_convolutional(self) -> bool:
        """Whether the network completes images of any size (holes anywhere)."""
        return self.size_policy[0] == "pad"

    @property
    def uses_vgg(self) -> bool:
        """Whether the paper's losses need VGG weights (its --vgg_weights flag)."""
        return any(f.name == "vgg_weights" for f in dataclasses.fields(self.config))

    def folder(self) -> str:
        """The paper's folder: reproductions/NAME, or wherever the package
        `reproductions.NAME` was found (the registry test adds one elsewhere)."""
        return paper_folder(self.name)

    def configs_dir(self) -> str:
        """The folder of the paper's named configs (paper, demo, smoke, ...)."""
        return os.path.join(self.folder(), "configs")


def paper_folder(paper: str) -> str:
    """The folder of the package `reproductions.PAPER`."""
    spec = importlib.util.find_spec(f"reproductions.{paper}")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"no folder for the paper {paper!r} under reproductions/.")
    return list(spec.submodule_search_locations)[0]


def check_paper(paper: str, flag: str = "--paper") -> str:
    """Returns `paper` if it names a reproduction, else fails naming the flag."""
    if paper not in PAPERS:
        raise UserError(f"{flag}: unknown paper {paper!r}; expected one of {list(PAPERS)}.")
    return paper


@functools.lru_cache(maxsize=None)
def get(paper: str, flag: str = "--paper") -> Paper:
    """The record of a registered paper (its paper.py is imported on first use)."""
    check_paper(paper, flag)
    record = importlib.import_module(f"reproductions.{paper}.paper").PAPER
    if record.name != paper:
        raise RuntimeError(f"reproductions/{paper}/paper.py declares the paper {record.name!r}.")
    return record


def all_papers() -> list[Paper]:
    """Every registered paper's record, in registry order."""
    return [get(name) for name in PAPERS]


def fully_convolutional_papers() -> tuple[str, ...]:
    """Names of the registered papers whose networks fill holes anywhere (the others
    fill only the centre region), in registry order."""
    return tuple(p.name for p in all_papers() if p.fully_convolutional)


def import_paper(paper: str, flag: str = "--paper") -> Paper:
    """A paper's record, after importing its train.py, which defines its flags."""
    record = get(paper, flag)
    importlib.import_module(f"reproductions.{paper}.train")
    return record


def config_path(paper: str, config: str) -> str:
    """A config given as a path, or as a file name under reproductions/PAPER/configs/."""
    if os.path.exists(config):
        return config
    path = os.path.join(paper_folder(check_paper(paper)), "configs", config)
    if not os.path.exists(path):
        raise UserError(f"--config {config!r}: no such file (looked in {path}).")
    return path


def _argv_value(argv: list[str], name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)


def paper_from_argv(argv: list[str] = sys.argv, default: str = PAPERS[0]) -> Paper:
    """The record of the --paper of a raw command line, its flags defined.

    Benchmarks read it before absl parses the command line, because the paper
    decides which flags exist. Also defines --paper (default `default`) and
    --config (see `insert_config_flagfile`). Exits with a one-line error for an
    unknown paper.
    """
    flags.DEFINE_string("paper", default, "Paper folder under reproductions/.")
    flags.DEFINE_string("config", "", "Config file name under reproductions/PAPER/configs/ "
                        "(or a path); later flags override it.")
    paper = _argv_value(argv, "paper", default)
    try:
        return import_paper(paper)
    except ValueError as error:
        sys.exit(f"error: {error}")


def insert_config_flagfile(paper: str, argv: list[str] = sys.argv) -> None:
    """Turns --config=NAME into a --flagfile placed first, so later flags override it."""
    config = _argv_value(argv, "config", "")
    if config:
        try:
            argv.insert(1, f"--flagfile={config_path(paper, config)}")
        except ValueError as error:
            sys.exit(f"error: {error}")


def device_description() -> str:
    """The machine a benchmark ran on: GPUs, if any, then the host CPU."""
    import tensorflow as tf

    cpu = f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU, {cpu}" if gpus else cpu
