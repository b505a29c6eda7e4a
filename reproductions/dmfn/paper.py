"""DMFN's record in the registry (reproductions/papers.py)."""

from reproductions.dmfn import convert
from reproductions.dmfn import train_lib
from reproductions.papers import Paper

PAPER = Paper.from_train_lib(
    train_lib,
    name="dmfn",
    title="DMFN",
    size_policy=("pad", 4),  # fully convolutional, two stride-2 downsamplings
    convert_released=convert.convert_released,  # the authors' released weights
)
