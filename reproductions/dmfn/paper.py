"""DMFN's record in the registry (reproductions/papers.py)."""

from reproductions.dmfn import train_lib
from reproductions.papers import Paper

PAPER = Paper(
    name="dmfn",
    title="DMFN",
    config=train_lib.Config,
    build_task=train_lib.build_task,
    parameter_counts=train_lib.parameter_counts,
    paper_input=train_lib.paper_input,
    describe=train_lib.describe,
    size_policy=("pad", 4),  # fully convolutional, two stride-2 downsamplings
)
