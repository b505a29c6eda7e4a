"""The four reproductions by folder name, for tools that take --paper and --config."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import types

from common.errors import UserError

PAPERS = ("context_encoder", "glcic", "structural_inpainting", "dmfn")
REPRODUCTIONS = os.path.dirname(os.path.abspath(__file__))


def check_paper(paper: str, flag: str = "--paper") -> str:
    """Returns `paper` if it names a reproduction, else fails naming the flag."""
    if paper not in PAPERS:
        raise UserError(f"{flag}: unknown paper {paper!r}; expected one of {list(PAPERS)}.")
    return paper


def import_paper(paper: str, flag: str = "--paper") -> tuple[types.ModuleType, types.ModuleType]:
    """(train module, train_lib module) of a paper; importing train defines its flags."""
    check_paper(paper, flag)
    return (importlib.import_module(f"reproductions.{paper}.train"),
            importlib.import_module(f"reproductions.{paper}.train_lib"))


def config_path(paper: str, config: str) -> str:
    """A config given as a path, or as a file name under reproductions/PAPER/configs/."""
    if os.path.exists(config):
        return config
    path = os.path.join(REPRODUCTIONS, check_paper(paper), "configs", config)
    if not os.path.exists(path):
        raise UserError(f"--config {config!r}: no such file (looked in {path}).")
    return path


def _argv_value(argv: list[str], name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)


def paper_from_argv(argv: list[str] = sys.argv,
                    default: str = "context_encoder") -> tuple[str, types.ModuleType,
                                                               types.ModuleType]:
    """(paper, train module, train_lib module) for the --paper of a raw command line.

    Benchmarks read it before absl parses the command line, because the paper
    decides which flags exist. Exits with a one-line error for an unknown paper.
    """
    paper = _argv_value(argv, "paper", default)
    try:
        return (paper, *import_paper(paper))
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
