"""Completing a user's image with a trained GLCIC completion network.

As in the official inference code: the image (any size) is padded to sides
that are multiples of 4, completed, composited into the known pixels, and
post-processed by fast marching + Poisson blending (on by default). The work
is done by the suite's shared inpainter (reproductions/inpainters.py), which
treats every fully convolutional model this way.
"""

from __future__ import annotations

import numpy as np

from reproductions import inpainters
from reproductions.glcic import train_lib


def complete(task: train_lib.GLCICTask, image: np.ndarray, mask: np.ndarray,
             postprocess_output: bool = True) -> np.ndarray:
    """Completes one image.

    Args:
      task: a GLCIC task holding trained weights and the training mean pixel.
      image: float HxWx3 RGB in [0, 1]; hole pixels may hold anything.
      mask: HxW or HxWx1, nonzero = hole.
      postprocess_output: fast marching + Poisson blending of the hole (the
        official default).

    Returns:
      float32 HxWx3 in [0, 1]; known pixels equal `image`.
    """
    return inpainters.PaperInpainter("glcic", task, postprocess=postprocess_output)(image, mask)
