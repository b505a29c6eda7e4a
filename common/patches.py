"""Local patches for local discriminators: where to crop, and the crop itself.

A patch is given by its top-left corner (int32 [2] = top, left) and a fixed
side. Corners are drawn per example in the input pipeline and patches are
cropped per example inside the train step, so every sample of a batch gets
its own patch (no batch-wide box) and gradients flow through the crop.
"""

from __future__ import annotations

import tensorflow as tf


def hole_centered_corner(mask: tf.Tensor, size: int) -> tf.Tensor:
    """Corner of the size x size box centred on the hole's bounding box, kept inside the image.

    Args:
      mask: [H, W, 1], 1 = hole; must contain a hole.
      size: side of the box (at most H and W).
    Returns:
      int32 [2] (top, left).
    """
    height, width = mask.shape[0], mask.shape[1]
    if size > height or size > width:
        raise ValueError(f"patch size {size} is larger than the mask ({height}x{width}).")
    hole = mask[..., 0] > 0.5

    def centre(any_along: tf.Tensor) -> tf.Tensor:
        indices = tf.cast(tf.where(any_along)[:, 0], tf.int32)
        return (tf.reduce_min(indices) + tf.reduce_max(indices) + 1) // 2

    top = centre(tf.reduce_any(hole, axis=1)) - size // 2
    left = centre(tf.reduce_any(hole, axis=0)) - size // 2
    return tf.stack([tf.clip_by_value(top, 0, height - size),
                     tf.clip_by_value(left, 0, width - size)])


def random_corner(seed: tf.Tensor, image_size: int, size: int) -> tf.Tensor:
    """Corner of a uniformly placed size x size box inside a square image (int32 [2])."""
    if size > image_size:
        raise ValueError(f"patch size {size} is larger than the image ({image_size}).")
    return tf.random.stateless_uniform([2], seed, minval=0, maxval=image_size - size + 1,
                                       dtype=tf.int32)


def crop_patches(images: tf.Tensor, corners: tf.Tensor, size: int) -> tf.Tensor:
    """Crops one size x size patch per image: [N, H, W, C], [N, 2] -> [N, size, size, C].

    An exact integer crop written as two gathers, so it is differentiable,
    works under XLA, and costs no interpolation.
    """
    offsets = tf.range(size, dtype=tf.int32)[None]
    corners = tf.cast(corners, tf.int32)
    rows = corners[:, 0:1] + offsets
    cols = corners[:, 1:2] + offsets
    patches = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(patches, cols, axis=2, batch_dims=1)
