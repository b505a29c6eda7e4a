"""DMFN's regular mask: a box shrunk by a random amount on each side (the authors' code)."""

from __future__ import annotations

import tensorflow as tf

from common import masks as common_masks
from common.masks import Size

def dmfn_box_mask(seed, image_size: Size = 256, box_size: Size = 128, max_delta: int = 32,
                  position: str = "random", margin: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """DMFN's regular mask: a box whose sides are shrunk by a random amount.

    The box is placed uniformly (`position="random"`, `margin` px from the
    border) or centred (`"center"`). The hole is the box shrunk symmetrically:
    top and bottom by the same delta_h, left and right by the same delta_w,
    each drawn independently from the integers [0, max_delta // 2]. The
    defaults give holes of 96..128 px per side. max_delta=0 gives the box
    itself (the official code still shrinks by 0..1 px there; we do not).

    Returns:
      (mask [H, W, 1], int32 [4] = (top, left, height, width) of the unshrunk
      box, e.g. for a local discriminator).
    """
    image_hw = common_masks.size_pair(image_size, "image_size")
    box_hw = common_masks.size_pair(box_size, "box_size")
    if not isinstance(max_delta, int) or max_delta < 0:
        raise ValueError(f"max_delta must be an int >= 0, got {max_delta!r}.")
    max_shrink = max_delta // 2
    if min(box_hw) - 2 * max_shrink < 1:
        raise ValueError(f"max_delta {max_delta} would shrink box_size {box_hw} to nothing.")
    common_masks.check_fits(box_hw, "box_size", image_hw, "image_size", margin)

    if position == "random":
        box = common_masks.random_box(common_masks.sub_seed(seed, 0), image_hw, box_hw, margin)
    elif position == "center":
        box = tf.constant([(image_hw[0] - box_hw[0]) // 2, (image_hw[1] - box_hw[1]) // 2,
                           box_hw[0], box_hw[1]], tf.int32)
    else:
        raise ValueError(f"position must be 'random' or 'center', got {position!r}.")
    shrink_rows = common_masks.uniform_int(common_masks.sub_seed(seed, 1), 0, max_shrink)
    shrink_cols = common_masks.uniform_int(common_masks.sub_seed(seed, 2), 0, max_shrink)
    hole = box + tf.stack([shrink_rows, shrink_cols, -2 * shrink_rows, -2 * shrink_cols])
    return common_masks.box_to_mask(hole, image_hw), box
