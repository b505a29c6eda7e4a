"""GLCIC's record in the registry (reproductions/papers.py)."""

from reproductions.glcic import postprocess
from reproductions.glcic import convert
from reproductions.glcic import train_lib
from reproductions.papers import Paper

PAPER = Paper.from_train_lib(
    train_lib,
    name="glcic",
    title="GLCIC",
    size_policy=("pad", 4),  # fully convolutional, two stride-2 downsamplings
    postprocess=postprocess.poisson_blend_batch,  # the paper's fast marching + Poisson
    prepare=train_lib.set_mean_pixel,
    convert_released=convert.convert_released,  # the authors' released weights
)
