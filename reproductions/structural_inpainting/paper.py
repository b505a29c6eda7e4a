"""Structural Inpainting's record in the registry (reproductions/papers.py)."""

from reproductions.papers import Paper
from reproductions.structural_inpainting import train_lib

PAPER = Paper(
    name="structural_inpainting",
    title="Structural Inpainting",
    config=train_lib.Config,
    build_task=train_lib.build_task,
    parameter_counts=train_lib.parameter_counts,
    paper_input=train_lib.paper_input,
    describe=train_lib.describe,
    size_policy=("resize", 128),  # 128x128 networks: the photo is resized to them
)
