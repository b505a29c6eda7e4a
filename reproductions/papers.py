"""The four reproductions by folder name, for tools that take a --paper flag."""

from __future__ import annotations

import importlib
import os
import types

PAPERS = ("context_encoder", "glcic", "structural_inpainting", "dmfn")
REPRODUCTIONS = os.path.dirname(os.path.abspath(__file__))


def check_paper(paper: str, flag: str = "--paper") -> str:
    """Returns `paper` if it names a reproduction, else fails naming the flag."""
    if paper not in PAPERS:
        raise ValueError(f"{flag}: unknown paper {paper!r}; expected one of {list(PAPERS)}.")
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
        raise ValueError(f"--config {config!r}: no such file (looked in {path}).")
    return path


def paper_from_argv(argv: list[str], default: str = "context_encoder") -> str:
    """--paper from a raw command line, read before absl parses it: the paper
    decides which flags exist."""
    return next((a.split("=", 1)[1] for a in argv if a.startswith("--paper=")), default)
