"""Completing a user's image with a trained GLCIC completion network.

The image (any size) is brought to sides that are multiples of 4, completed,
composited into the known pixels, and post-processed by fast marching +
Poisson blending, the paper's method (on by default). The official
inpaint.lua differs in two ways, both available here: it resizes the image to
the nearest multiple of 4 where the suite reflect-pads by default
(`fit="resize"`), and its post-processing never runs (it defines
`--nopostproc` but tests `opt.postproc`; `postprocess_output=False`). The work
is done by the suite's shared inpainter (reproductions/inpainters.py), which
treats every fully convolutional model this way.
"""

from __future__ import annotations

import numpy as np

from reproductions import inpainters
from reproductions.glcic import train_lib


def complete(task: train_lib.GLCICTask, image: np.ndarray, mask: np.ndarray,
             postprocess_output: bool = True, fit: str = "pad") -> np.ndarray:
    """Completes one image.

    Args:
      task: a GLCIC task holding trained weights and the training mean pixel.
      image: float HxWx3 RGB in [0, 1]; hole pixels may hold anything.
      mask: HxW or HxWx1, nonzero = hole.
      postprocess_output: fast marching + Poisson blending of the hole (the
        paper's; the official inpaint.lua never applies it).
      fit: "pad" (reflect-pad to a multiple of 4) or "resize" (inpaint.lua's).

    Returns:
      float32 HxWx3 in [0, 1]; known pixels equal `image`.
    """
    return inpainters.PaperInpainter("glcic", task, postprocess=postprocess_output,
                                     fit=fit)(image, mask)
