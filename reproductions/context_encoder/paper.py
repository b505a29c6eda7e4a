"""Context Encoders' record in the registry (reproductions/papers.py)."""

from reproductions.context_encoder import convert
from reproductions.context_encoder import train_lib
from reproductions.papers import Paper

PAPER = Paper.from_train_lib(
    train_lib,
    name="context_encoder",
    title="Context Encoders",
    size_policy=("resize", 128),  # 128x128 networks: the photo is resized to them
    convert_released=convert.convert_released,  # the authors' released weights
)
