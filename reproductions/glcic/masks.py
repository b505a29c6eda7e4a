"""GLCIC's training hole and the box its local discriminator sees (the authors' code)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from common import masks as common_masks
from common.masks import Size

def glcic_hole_and_local_box(seed, image_size: Size = 256, hole_range: Sequence[int] = (96, 128),
                             local_size: Size = 128) -> tuple[tf.Tensor, tf.Tensor]:
    """GLCIC's training hole and the box the local discriminator looks at.

    A local_size box is placed uniformly in the image; the hole's height and
    width are drawn independently and uniformly from hole_range (both ends
    included), and the hole is placed uniformly inside the local box, so the
    box always contains the whole hole.

    Returns:
      (mask [H, W, 1], local box int32 [4] = (top, left, height, width)).
    """
    image_hw = common_masks.size_pair(image_size, "image_size")
    local_hw = common_masks.size_pair(local_size, "local_size")
    if (not isinstance(hole_range, (tuple, list)) or len(hole_range) != 2
            or not 0 < hole_range[0] <= hole_range[1]):
        raise ValueError(f"hole_range must be a (min, max) pair with 0 < min <= max, got {hole_range!r}.")
    common_masks.check_fits(local_hw, "local_size", image_hw, "image_size")
    common_masks.check_fits((hole_range[1], hole_range[1]), "largest hole of hole_range", local_hw, "local_size")

    local_box = common_masks.random_box(common_masks.sub_seed(seed, 0), image_hw, local_hw)
    hole_height = common_masks.uniform_int(common_masks.sub_seed(seed, 1), hole_range[0], hole_range[1])
    hole_width = common_masks.uniform_int(common_masks.sub_seed(seed, 2), hole_range[0], hole_range[1])
    hole_top = local_box[0] + common_masks.uniform_int(common_masks.sub_seed(seed, 3), 0, local_hw[0] - hole_height)
    hole_left = local_box[1] + common_masks.uniform_int(common_masks.sub_seed(seed, 4), 0, local_hw[1] - hole_width)
    hole = tf.stack([hole_top, hole_left, hole_height, hole_width])
    return common_masks.box_to_mask(hole, image_hw), local_box
