"""Structural Inpainting's record in the registry (reproductions/papers.py)."""

from reproductions.papers import Paper
from reproductions.structural_inpainting import train_lib

PAPER = Paper.from_train_lib(
    train_lib,
    name="structural_inpainting",
    title="Structural Inpainting",
    size_policy=("resize", 128),  # 128x128 networks: the photo is resized to them
)
