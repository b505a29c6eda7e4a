"""Completing a user's image with a trained GLCIC completion network.

As in the official inference code: the image (any size) is padded to sides
that are multiples of 4, completed, composited into the known pixels, and
post-processed by fast marching + Poisson blending (on by default).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from reproductions.glcic import postprocess
from reproductions.glcic import train_lib

MULTIPLE = 4  # two stride-2 downsamplings


def pad_amounts(height: int, width: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """Rows and columns to add at the bottom and right to reach multiples of `multiple`."""
    return (-height) % multiple, (-width) % multiple


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
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}.")
    mask = np.asarray(mask)
    mask = (mask.reshape(mask.shape[:2]) != 0).astype(np.float32)[..., None]
    if mask.shape[:2] != image.shape[:2]:
        raise ValueError(f"mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                         f"{image.shape[0]}x{image.shape[1]}.")
    height, width = image.shape[:2]
    pad_h, pad_w = pad_amounts(height, width)
    # Reflection keeps the padded border natural-looking; it is cropped away after.
    padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    padded_mask = np.pad(mask, ((0, pad_h), (0, pad_w), (0, 0)))
    _, composite = task.complete(tf.constant(padded[None] * 2.0 - 1.0),
                                 tf.constant(padded_mask[None]), training=False)
    composite = composite.numpy()[0, :height, :width]
    composite = mask * composite + (1.0 - mask) * image
    if postprocess_output:
        composite = postprocess.poisson_blend_batch(image[None], composite[None], mask[None])[0]
    return composite.astype(np.float32)
