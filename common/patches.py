"""Square patches: the local discriminators' crops, and the centre-patch models' patch.

A local patch is given by its top-left corner (int32 [2] = top, left) and a
fixed side. Corners are drawn per example in the input pipeline and patches are
cropped per example inside the train step, so every sample of a batch gets
its own patch (no batch-wide box) and gradients flow through the crop.

The centre-patch models (Context Encoders' center region, Structural
Inpainting) predict one fixed (top, left, size) box of every image
(`masks.center_box`): `center_patch`, `paste_center` and `center_predictions`.
"""

from __future__ import annotations

import tensorflow as tf

from common import masks


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


def center_patch(images: tf.Tensor, box: tuple[int, int, int]) -> tf.Tensor:
    """The (top, left, size) square of a batch of images."""
    top, left, size = box
    return images[:, top:top + size, left:left + size]


def paste_center(patch: tf.Tensor, image_size: int, box: tuple[int, int, int]) -> tf.Tensor:
    """A full-size batch, zero outside the box, holding `patch` inside it."""
    top, left, size = box
    return tf.pad(patch, [[0, 0], [top, image_size - top - size],
                          [left, image_size - left - size], [0, 0]])


def center_predictions(inputs: tf.Tensor, image: tf.Tensor, mask: tf.Tensor, patch: tf.Tensor,
                       box: tuple[int, int, int]) -> dict[str, tf.Tensor]:
    """`Task.predict` outputs of a centre-patch model, all in [-1, 1].

    The raw output shows the whole predicted patch over the input; the
    composite, like the official test.lua, keeps only the patch's part inside
    the hole (its inner (64 - 2*overlap)^2), the ring staying context.
    """
    image_size = image.shape[1]
    pasted = paste_center(patch, image_size, box)
    region = masks.center_mask(image_size, box[2], overlap=0)[None]
    return {"input": inputs, "output": region * pasted + (1.0 - region) * inputs,
            "composite": mask * pasted + (1.0 - mask) * image, "target": image, "mask": mask}
