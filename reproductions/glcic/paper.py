"""GLCIC's record in the registry (reproductions/papers.py)."""

from reproductions.glcic import postprocess
from reproductions.glcic import train_lib
from reproductions.papers import Paper

PAPER = Paper(
    name="glcic",
    title="GLCIC",
    config=train_lib.Config,
    build_task=train_lib.build_task,
    parameter_counts=train_lib.parameter_counts,
    paper_input=train_lib.paper_input,
    describe=train_lib.describe,
    size_policy=("pad", 4),  # fully convolutional, two stride-2 downsamplings
    postprocess=postprocess.poisson_blend_batch,  # the paper's fast marching + Poisson
    prepare=train_lib.set_mean_pixel,
)
