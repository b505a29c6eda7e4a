"""Hole masks for the inpainting papers of the suite.

A mask is a float32 tensor of shape [H, W, 1] with 1 = hole (pixel to
inpaint) and 0 = known pixel. Mask images on disk are white = hole; they are
converted once, when read.

Every random generator is a pure function of an explicit stateless seed, a
shape-[2] int32/int64 tensor as taken by `tf.random.stateless_uniform`:

    mask = random_block_mask(seed=[7, 0], image_size=128, block_size=64)

The same seed always gives the same mask, and the generators use TF ops only,
so they run inside `tf.data.Dataset.map` in graph mode. Independent draws use
sub-seeds derived with `tf.random.experimental.stateless_fold_in(seed, k)`;
the k of each draw is a named constant of its function, so adding a draw never
silently changes the others.

What each paper uses (a mask only one paper draws lives in its folder's masks.py):
  * Context Encoders: `center_mask` (+ `overlap_weights` for the loss) or
    its random-region mask, hole filled with `IMAGENET_MEAN_FILL`.
  * GLCIC: its hole and local box (the local discriminator sees the box).
  * Structural Inpainting: `center_mask`, as Context Encoders.
  * DMFN: its shrunk box (regular) or `MaskFolder` (irregular mask files,
    optionally changed by `MaskAugmentation`: crops, rotations, dilation, flips).
  * Any model: `irregular_mask` free-form strokes, `strokes_by_area_mask`
    (strokes whose hole area is uniform over the NVIDIA masks' 1-60 %),
    `random_block_mask`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
from typing import Sequence, Union

import numpy as np
import scipy.ndimage
import tensorflow as tf

from common.errors import UserError
from common.image_files import check_image_file, check_image_header, find_image_files

Size = Union[int, Sequence[int]]

# Context Encoders fills holes with the ImageNet mean pixel (R, G, B) = (117,
# 104, 123), written in the suite's [-1, 1] range.
IMAGENET_MEAN_FILL = (2 * 117 / 255 - 1, 2 * 104 / 255 - 1, 2 * 123 / 255 - 1)
# Mid-gray in [-1, 1]: the zero fill of GLCIC (after mean subtraction) and DMFN.
GRAY_FILL = 0.0

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# --------------------------------------------------------------------------
# Argument checks and random draws shared by the generators.
# --------------------------------------------------------------------------

def size_pair(value: Size, name: str) -> tuple[int, int]:
    """Returns (height, width) from an int or an (h, w) pair of positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be an int or an (height, width) pair of ints, got {value!r}.")
    if min(pair) <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}.")
    return pair


def check_fits(inner: tuple[int, int], inner_name: str, outer: tuple[int, int],
                outer_name: str, margin: int = 0) -> None:
    """Raises ValueError unless `inner` (plus `margin` on each side) fits in `outer`."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}.")
    if inner[0] + 2 * margin > outer[0] or inner[1] + 2 * margin > outer[1]:
        with_margin = f" with a margin of {margin} px" if margin else ""
        raise ValueError(f"{inner_name} {inner} does not fit in {outer_name} {outer}{with_margin}.")


def _positive_int(value, name: str) -> int:
    """`value` if it is a positive int, else a ValueError naming `name`."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def sub_seed(seed, draw: int) -> tf.Tensor:
    """The seed of one independent draw of a generator."""
    return tf.random.experimental.stateless_fold_in(seed, draw)


def uniform_int(seed, low, high) -> tf.Tensor:
    """A scalar int32 drawn uniformly from [low, high], both ends included."""
    return tf.random.stateless_uniform(
        [], seed, minval=tf.cast(low, tf.int32), maxval=tf.cast(high, tf.int32) + 1, dtype=tf.int32)


# --------------------------------------------------------------------------
# Boxes.
# --------------------------------------------------------------------------

def box_to_mask(box, image_size: Size) -> tf.Tensor:
    """Mask [H, W, 1] that is 1 inside `box` = (top, left, height, width), 0 elsewhere.

    `box` may be a tensor (graph mode) or Python ints; parts outside the image
    are clipped.
    """
    height, width = size_pair(image_size, "image_size")
    box = tf.cast(box, tf.int32)
    top, left, box_height, box_width = box[0], box[1], box[2], box[3]
    rows = tf.range(height)
    cols = tf.range(width)
    in_rows = (rows >= top) & (rows < top + box_height)
    in_cols = (cols >= left) & (cols < left + box_width)
    inside = in_rows[:, tf.newaxis] & in_cols[tf.newaxis, :]
    return tf.cast(inside, tf.float32)[..., tf.newaxis]


def random_box(seed, image_size: tuple[int, int], box_size: tuple[int, int],
                margin: int = 0) -> tf.Tensor:
    """int32 [4] box (top, left, h, w) at a uniform position `margin` px from the border."""
    (height, width), (box_height, box_width) = image_size, box_size
    top = uniform_int(sub_seed(seed, 0), margin, height - margin - box_height)
    left = uniform_int(sub_seed(seed, 1), margin, width - margin - box_width)
    return tf.stack([top, left, tf.constant(box_height), tf.constant(box_width)])


# --------------------------------------------------------------------------
# Context Encoders: centre region.
# --------------------------------------------------------------------------

def _check_overlap(hole_size: int, overlap: int) -> None:
    if not isinstance(overlap, int) or overlap < 0 or 2 * overlap >= hole_size:
        raise ValueError(
            f"overlap must be an int with 0 <= 2 * overlap < hole_size ({hole_size}), got {overlap!r}.")


def center_box(image_size: Size = 128, hole_size: int = 64) -> tuple[int, int, int]:
    """(top, left, size) of the centred hole_size square, as Python ints.

    For the defaults, rows and columns 32..95 (0-based; 33..96 in the Lua code).
    """
    height, width = size_pair(image_size, "image_size")
    hole_size = _positive_int(hole_size, "hole_size")
    check_fits((hole_size, hole_size), "hole_size", (height, width), "image_size")
    return (height - hole_size) // 2, (width - hole_size) // 2, hole_size


def center_mask(image_size: Size = 128, hole_size: int = 64, overlap: int = 4) -> tf.Tensor:
    """Context Encoders' centre mask [H, W, 1].

    The generator predicts the centre hole_size square, but only its inner
    (hole_size - 2 * overlap) square is blanked: the `overlap` px ring stays
    visible, so the prediction has context to blend into (and the ring is
    weighted up in the loss, see `overlap_weights`). With the defaults the mask
    holds 56 * 56 ones.
    """
    top, left, size = center_box(image_size, hole_size)
    _check_overlap(size, overlap)
    blanked = size - 2 * overlap
    return box_to_mask((top + overlap, left + overlap, blanked, blanked), image_size)


def overlap_weights(hole_size: int = 64, overlap: int = 4, ring_weight: float = 10.0) -> tf.Tensor:
    """Per-pixel L2 weights [hole_size, hole_size, 1] of the predicted centre patch.

    `ring_weight` on the `overlap` px ring along the patch border and 1 inside,
    as Context Encoders' `overlapL2Weight`: the ring is visible in the input,
    so predicting it right is what makes the seam invisible.
    """
    hole_size = _positive_int(hole_size, "hole_size")
    _check_overlap(hole_size, overlap)
    inner = box_to_mask((overlap, overlap, hole_size - 2 * overlap, hole_size - 2 * overlap), hole_size)
    return tf.where(inner > 0, 1.0, tf.cast(ring_weight, tf.float32))


# --------------------------------------------------------------------------
# Rectangles at random positions.
# --------------------------------------------------------------------------

def random_block_mask(seed, image_size: Size, block_size: Size, margin: int = 0) -> tf.Tensor:
    """One block_size rectangle at a uniformly random position, `margin` px from the border."""
    image_hw = size_pair(image_size, "image_size")
    block_hw = size_pair(block_size, "block_size")
    check_fits(block_hw, "block_size", image_hw, "image_size", margin)
    return box_to_mask(random_box(seed, image_hw, block_hw, margin), image_hw)


# --------------------------------------------------------------------------
# Free-form strokes.
# --------------------------------------------------------------------------

# Stroke sizes below are for a 256 px image; other sizes scale them by
# min(H, W) / 256.
_STROKE_REFERENCE_SIZE = 256


@dataclasses.dataclass(frozen=True)
class StrokeParams:
    """Random-walk brush strokes, sizes in px for a 256 x 256 image.

    Each stroke starts at a uniform point with a uniform heading and makes
    1..max_vertices straight segments; before each segment the heading turns
    by a uniform angle in [-max_angle, max_angle] (radians) and the segment
    length is uniform in [min_length, max_length]. Vertices are clipped to the
    image, so strokes slide along borders instead of leaving the image. One
    stroke has one width, uniform in [min_width, max_width].
    """

    min_strokes: int
    max_strokes: int
    max_vertices: int
    min_length: float
    max_length: float
    min_width: float
    max_width: float
    max_angle: float = math.pi / 2

    def __post_init__(self):
        if not 1 <= self.min_strokes <= self.max_strokes:
            raise ValueError("StrokeParams needs 1 <= min_strokes <= max_strokes, got "
                             f"{self.min_strokes} and {self.max_strokes}.")
        if self.max_vertices < 1:
            raise ValueError(f"StrokeParams needs max_vertices >= 1, got {self.max_vertices}.")
        if not 0 <= self.min_length <= self.max_length:
            raise ValueError("StrokeParams needs 0 <= min_length <= max_length, got "
                             f"{self.min_length} and {self.max_length}.")
        if not 0 < self.min_width <= self.max_width:
            raise ValueError("StrokeParams needs 0 < min_width <= max_width, got "
                             f"{self.min_width} and {self.max_width}.")
        if self.max_angle < 0:
            raise ValueError(f"StrokeParams needs max_angle >= 0, got {self.max_angle}.")

    def scaled(self, factor: float) -> "StrokeParams":
        """The same strokes for an image `factor` times the reference size."""
        return dataclasses.replace(
            self, min_length=self.min_length * factor, max_length=self.max_length * factor,
            min_width=max(1.0, self.min_width * factor), max_width=max(1.0, self.max_width * factor))


# In the spirit of LaMa's thin / medium / thick random masks at 256 px
# (configs/data_gen/random_*_256.yaml; 1..5 segments per stroke):
#   thin   4-50 strokes, length 10-49, width 5-14;
#   medium 4-5 strokes,  length 10-109, width 5-54;
#   thick  1-5 strokes,  length 10-209, width 5-104, masks over 50 % dropped.
# Our strokes are random walks that turn gradually, so they fold back onto
# themselves less and cover more than LaMa's for the same numbers: thin has
# fewer, narrower strokes and thick fewer, shorter ones (no mask is dropped).
# Hole coverage at 256 px over 200 seeds, mean (5th-95th percentile):
#   thin 0.13 (0.04-0.23), medium 0.23 (0.12-0.36), thick 0.33 (0.08-0.59).
IRREGULAR_PRESETS = {
    # Many short narrow scribbles.
    "thin": StrokeParams(min_strokes=4, max_strokes=30, max_vertices=5,
                         min_length=10, max_length=40, min_width=4, max_width=12),
    # A few medium strokes (LaMa's medium numbers).
    "medium": StrokeParams(min_strokes=4, max_strokes=5, max_vertices=5,
                           min_length=10, max_length=100, min_width=5, max_width=50),
    # Few long wide strokes.
    "thick": StrokeParams(min_strokes=1, max_strokes=4, max_vertices=5,
                          min_length=20, max_length=160, min_width=30, max_width=80),
}


def _stroke_params(preset: Union[str, StrokeParams]) -> StrokeParams:
    if isinstance(preset, StrokeParams):
        return preset
    if preset not in IRREGULAR_PRESETS:
        raise ValueError(f"preset must be one of {sorted(IRREGULAR_PRESETS)} or a StrokeParams, "
                         f"got {preset!r}.")
    return IRREGULAR_PRESETS[preset]


def _render_capsules(start_y, start_x, end_y, end_x, radius, enabled,
                     image_hw: tuple[int, int]) -> tf.Tensor:
    """Bool [H, W]: pixels within `radius` of any enabled segment (all args [S])."""
    return tf.reduce_any(_segment_masks(start_y, start_x, end_y, end_x, radius, enabled,
                                        image_hw), axis=0)


def _segment_masks(start_y, start_x, end_y, end_x, radius, enabled,
                   image_hw: tuple[int, int]) -> tf.Tensor:
    """Bool [S, H, W]: the pixels within `radius` of each segment (all False if disabled).

    The set of points within a distance of a segment is a capsule: a rectangle
    with round caps. Round caps are what join consecutive segments of a stroke
    without gaps at sharp turns.
    """
    # [S, 1, 1] segments against [1, H, 1] rows and [1, 1, W] columns.
    start_y, start_x, end_y, end_x, radius, enabled = (
        t[:, tf.newaxis, tf.newaxis] for t in (start_y, start_x, end_y, end_x, radius, enabled))
    rows = tf.range(image_hw[0], dtype=tf.float32)[tf.newaxis, :, tf.newaxis]
    cols = tf.range(image_hw[1], dtype=tf.float32)[tf.newaxis, tf.newaxis, :]
    step_y, step_x = end_y - start_y, end_x - start_x
    # Position of the closest point along the segment, 0 at start, 1 at end;
    # a zero-length segment (divide_no_nan gives 0) is a disc.
    along = tf.math.divide_no_nan((rows - start_y) * step_y + (cols - start_x) * step_x,
                                  step_y ** 2 + step_x ** 2)
    along = tf.clip_by_value(along, 0.0, 1.0)
    squared_distance = (rows - start_y - along * step_y) ** 2 + (cols - start_x - along * step_x) ** 2
    return (squared_distance <= radius ** 2) & enabled


def _stroke_walks(seed, image_hw: tuple[int, int], params: StrokeParams, all_strokes: bool,
                  width_scale=1.0):
    """The segments of up to `params.max_strokes` random-walk strokes.

    Returns [vertices, strokes] tensors (start_y, start_x, end_y, end_x,
    radius, enabled): segment v of stroke s. With `all_strokes` every stroke
    is enabled (the caller picks how many to keep); otherwise the first
    uniform(min_strokes, max_strokes) are. Every width is multiplied by
    `width_scale` (a scalar, possibly a tensor).
    """
    strokes, vertices = params.max_strokes, params.max_vertices
    (count_draw, vertices_draw, start_draw, heading_draw,
     turn_draw, length_draw, width_draw) = range(7)

    def uniform(draw, shape, low, high):
        return tf.random.stateless_uniform(shape, sub_seed(seed, draw), low, high)

    num_strokes = (strokes if all_strokes else
                   uniform_int(sub_seed(seed, count_draw), params.min_strokes, strokes))
    num_segments = tf.random.stateless_uniform(
        [strokes], sub_seed(seed, vertices_draw), minval=1, maxval=vertices + 1, dtype=tf.int32)
    start = uniform(start_draw, [2, strokes], 0.0, 1.0)
    y = start[0] * (image_hw[0] - 1)
    x = start[1] * (image_hw[1] - 1)
    heading = uniform(heading_draw, [strokes], 0.0, 2 * math.pi)
    turns = uniform(turn_draw, [vertices, strokes], -params.max_angle, params.max_angle)
    lengths = uniform(length_draw, [vertices, strokes], params.min_length, params.max_length)
    widths = uniform(width_draw, [strokes], params.min_width, params.max_width) * width_scale

    # The walk, unrolled over the (few) vertices: [vertices + 1, strokes] points.
    ys, xs = [y], [x]
    for v in range(vertices):
        heading = heading + turns[v]
        y = tf.clip_by_value(y + lengths[v] * tf.sin(heading), 0.0, image_hw[0] - 1.0)
        x = tf.clip_by_value(x + lengths[v] * tf.cos(heading), 0.0, image_hw[1] - 1.0)
        ys.append(y)
        xs.append(x)
    ys, xs = tf.stack(ys), tf.stack(xs)

    segment_index = tf.range(vertices)[:, tf.newaxis]
    stroke_index = tf.range(strokes)[tf.newaxis, :]
    enabled = (stroke_index < num_strokes) & (segment_index < num_segments[tf.newaxis, :])
    radius = tf.broadcast_to(widths / 2, [vertices, strokes])
    return ys[:-1], xs[:-1], ys[1:], xs[1:], radius, enabled


def _flat(segments: tf.Tensor) -> tf.Tensor:
    """[vertices, strokes] -> [segments], stroke index fastest."""
    return tf.reshape(segments, [-1])


def irregular_mask(seed, image_size: Size = 256,
                   preset: Union[str, StrokeParams] = "medium") -> tf.Tensor:
    """Free-form mask [H, W, 1] of random-walk brush strokes.

    `preset` is a name of IRREGULAR_PRESETS ("thin", "medium", "thick") or a
    StrokeParams; its sizes are for 256 px and scaled to min(H, W) / 256. All
    max_strokes * max_vertices segments are rendered at once; the strokes and
    vertices beyond the drawn counts are disabled.
    """
    image_hw = size_pair(image_size, "image_size")
    params = _stroke_params(preset).scaled(min(image_hw) / _STROKE_REFERENCE_SIZE)
    holes = _render_capsules(*(_flat(t) for t in _stroke_walks(seed, image_hw, params, False)),
                             image_hw)
    return tf.cast(holes, tf.float32)[..., tf.newaxis]


# Strokes for masks of a chosen hole area (`strokes_by_area_mask`), sizes at
# 256 px: enough short strokes of mixed widths to cover 60 % of the image.
AREA_STROKES = StrokeParams(min_strokes=48, max_strokes=48, max_vertices=6,
                            min_length=10, max_length=60, min_width=6, max_width=40)
# The NVIDIA irregular masks' hole-area range, 200 masks in each 10 % bin.
NVIDIA_AREA_RANGE = (0.01, 0.6)


# Stroke width against hole area for `strokes_by_area_mask(depth_matched=True)`:
# AREA_STROKES' widths times thin + (thick - thin) * (area / 0.6) ** power, for
# (thin, thick, power) below. Chosen so that the mean distance
# of a hole pixel to the nearest known pixel (`hole_depth`) follows the NVIDIA
# masks' in each 10 % bin (benchmarks/README.md, "Irregular holes"): thin scribbles for small
# holes, where a diffusion is hard to beat, and wide strokes merging into blobs
# for large ones.
DEPTH_MATCHED_WIDTH_SCALE = (0.42, 1.9, 2.5)


def strokes_by_area_mask(seed, image_size: Size = 256,
                         area_range: Sequence[float] = NVIDIA_AREA_RANGE,
                         params: StrokeParams = AREA_STROKES,
                         depth_matched: bool = False) -> tf.Tensor:
    """Free-form strokes [H, W, 1] whose hole area is drawn uniformly from `area_range`.

    A target area is drawn; strokes are added one by one, and the mask is the
    union of the first k, k chosen so that its area is the closest to the
    target. The hole-area histogram is then about flat over the range, as the
    NVIDIA irregular masks' bins are (the evaluation masks, never trained on):
    a model trained on these meets every bin's holes. With `depth_matched`,
    the strokes' widths grow with the target area (DEPTH_MATCHED_WIDTH_SCALE),
    so that small holes are thin and large ones thick, as in those masks.
    """
    low, high = (float(v) for v in area_range)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"area_range must be 0 <= low < high <= 1, got {tuple(area_range)}.")
    image_hw = size_pair(image_size, "image_size")
    params = params.scaled(min(image_hw) / _STROKE_REFERENCE_SIZE)
    target = tf.random.stateless_uniform([], sub_seed(seed, 7), low, high)
    width_scale = 1.0
    if depth_matched:
        thin, thick, power = DEPTH_MATCHED_WIDTH_SCALE
        width_scale = thin + (thick - thin) * tf.minimum(target / NVIDIA_AREA_RANGE[1], 1.0) ** power
    start_y, start_x, end_y, end_x, radius, enabled = _stroke_walks(
        seed, image_hw, params, True, width_scale)
    vertices, strokes = params.max_vertices, params.max_strokes
    # Each stroke alone: render every segment, then join a stroke's segments.
    segments = _segment_masks(*(_flat(t) for t in (start_y, start_x, end_y, end_x, radius,
                                                   enabled)), image_hw)
    per_stroke = tf.reduce_any(tf.reshape(segments, [vertices, strokes, *image_hw]), axis=0)
    # The union of the first k strokes, for every k, and its area.
    unions = tf.math.cumsum(tf.cast(per_stroke, tf.int32), axis=0) > 0
    areas = tf.reduce_mean(tf.cast(unions, tf.float32), axis=[1, 2])
    chosen = tf.argmin(tf.abs(areas - target))
    return tf.cast(tf.gather(unions, chosen), tf.float32)[..., tf.newaxis]


def hole_depth(mask: np.ndarray) -> float:
    """Mean distance (px) from a hole pixel to the nearest known pixel of an [H, W(, 1)] mask.

    1 for a one-pixel-wide line, about w / 4 for a long stroke of width w: how
    far into a hole a fill must reach. NaN for a mask without a hole.
    """
    holes = np.asarray(mask).reshape(np.shape(mask)[:2]) > 0.5
    if not holes.any():
        return float("nan")
    return float(scipy.ndimage.distance_transform_edt(holes)[holes].mean())


# --------------------------------------------------------------------------
# Masks read from a folder of mask images.
# --------------------------------------------------------------------------

# Files decoded when a folder is loaded; spread evenly over the sorted list,
# so that a folder sorted by hole size is checked at all sizes.
_FILES_CHECKED = 64


def _read_holes(path, invert: bool) -> tf.Tensor:
    """Bool [h, w, 1] holes of a mask image file, at its own size (graph mode)."""
    # Decoded as RGB then made gray, because decode_image refuses channels=1
    # for BMP; the luma weights are those of PIL's convert("L").
    rgb = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    gray = tf.image.rgb_to_grayscale(rgb)
    return gray <= 127 if invert else gray > 127


def _decode_mask(path, image_size: tuple[int, int], invert: bool) -> tf.Tensor:
    """Reads a mask image in the graph: float32 [H, W, 1], 1 = hole."""
    # Binarised before resizing, so that JPEG ringing cannot matter; nearest
    # neighbour then keeps the mask binary.
    holes = tf.cast(_read_holes(path, invert), tf.uint8)
    holes = tf.image.resize(holes, image_size, method="nearest")
    return tf.ensure_shape(tf.cast(holes, tf.float32), [image_size[0], image_size[1], 1])


def _checked_coverage(path: str, invert: bool) -> float:
    """Hole coverage of one mask file, or a ValueError naming it if it can not be used.

    PIL decodes the whole file (truncated files are caught); the coverage is
    then measured on TensorFlow's decoding, the one training uses, which
    also catches the few files PIL reads and TensorFlow does not (1-bit BMP).
    """
    reason = check_image_file(path)
    if reason is None:
        try:
            holes = _read_holes(path, invert)
        except tf.errors.InvalidArgumentError as error:
            reason = f"not decodable by TensorFlow ({error.message.splitlines()[0]})"
    if reason is not None:
        raise UserError(f"Mask file {path!r} is {reason}.")
    return float(tf.reduce_mean(tf.cast(holes, tf.float64)))


@dataclasses.dataclass(frozen=True)
class MaskAugmentation:
    """Random changes to a mask file, as the partial-convolution protocol (Liu et al.
    2018) augments the NVIDIA masks for training: cropping, rotation, dilation, and
    flips. Each draw is a pure function of its seed.

    Fields:
      min_crop: a square window of side min_crop..1 of the mask (in a random
        place) is taken and resized to the image; 1 keeps the whole mask.
      max_rotation: degrees; the mask turns by a uniform angle in
        [-max_rotation, max_rotation] about its centre (corners that come in
        from outside are known pixels).
      max_dilation: the hole grows by 0..max_dilation px (3x3 steps, at the
        image's size).
      flips: left-right and up-down, each with probability 1/2.
    """

    min_crop: float = 0.5
    max_rotation: float = 180.0
    max_dilation: int = 2
    flips: bool = True

    # Sub-seed numbers of the draws (see the module docstring).
    _CROP_SIDE, _CROP_TOP, _CROP_LEFT, _ANGLE, _DILATION, _FLIP_LR, _FLIP_UD = range(7)

    def __post_init__(self):
        if not 0 < self.min_crop <= 1:
            raise ValueError(f"min_crop must be in (0, 1], got {self.min_crop}.")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"max_rotation must be in [0, 180] degrees, got {self.max_rotation}.")
        if not isinstance(self.max_dilation, int) or self.max_dilation < 0:
            raise ValueError(f"max_dilation must be an int >= 0, got {self.max_dilation!r}.")

    def __call__(self, seed, holes: tf.Tensor, image_size: Size) -> tf.Tensor:
        """float32 [H, W, 1] mask from bool/0-1 `holes` [h, w, 1] at the file's own size.

        A draw that leaves no hole (a crop beside it) or no known pixel (a large
        dilation) gives the file's mask resized, unchanged.
        """
        height, width = size_pair(image_size, "image_size")
        holes = tf.cast(holes, tf.float32)
        side = tf.random.stateless_uniform([], sub_seed(seed, self._CROP_SIDE),
                                           self.min_crop, 1.0)
        top = tf.random.stateless_uniform([], sub_seed(seed, self._CROP_TOP)) * (1.0 - side)
        left = tf.random.stateless_uniform([], sub_seed(seed, self._CROP_LEFT)) * (1.0 - side)
        box = tf.stack([top, left, top + side, left + side])[tf.newaxis]
        mask = tf.image.crop_and_resize(holes[tf.newaxis], box, [0], [height, width],
                                        method="nearest")
        angle = tf.random.stateless_uniform([], sub_seed(seed, self._ANGLE), -1.0, 1.0)
        mask = _rotate(mask, angle * self.max_rotation * math.pi / 180.0)
        steps = uniform_int(sub_seed(seed, self._DILATION), 0, self.max_dilation)
        mask = tf.while_loop(lambda i, m: i < steps,
                             lambda i, m: (i + 1, tf.nn.max_pool2d(m, 3, 1, "SAME")),
                             (tf.constant(0), mask))[1]
        if self.flips:
            flip_lr, flip_ud = (tf.random.stateless_uniform([], sub_seed(seed, k)) < 0.5
                                for k in (self._FLIP_LR, self._FLIP_UD))
            mask = tf.where(flip_lr, tf.reverse(mask, [2]), mask)
            mask = tf.where(flip_ud, tf.reverse(mask, [1]), mask)
        mask = tf.cast(mask[0] > 0.5, tf.float32)
        usable = (tf.reduce_max(mask) > 0) & (tf.reduce_min(mask) < 1)
        mask = tf.cond(usable, lambda: mask, lambda: tf.cast(
            tf.image.resize(holes, [height, width], method="nearest") > 0.5, tf.float32))
        return tf.ensure_shape(mask, [height, width, 1])


def _rotate(images: tf.Tensor, radians: tf.Tensor) -> tf.Tensor:
    """[N, H, W, C] turned by `radians` about their centre, nearest neighbour, zeros
    where nothing maps (the output-to-input transform of ImageProjectiveTransformV3)."""
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2],
                                                                        tf.float32)
    cos, sin = tf.cos(radians), tf.sin(radians)
    center_x, center_y = (width - 1) / 2, (height - 1) / 2
    transform = tf.stack([cos, -sin, center_x - cos * center_x + sin * center_y,
                          sin, cos, center_y - sin * center_x - cos * center_y, 0.0, 0.0])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transform[tf.newaxis], output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")


@dataclasses.dataclass(frozen=True)
class MaskFolder:
    """Mask images of a folder (white = hole, or black = hole with invert=True).

    Build it with `load_mask_folder`, which checks the files.
    """

    files: tuple[str, ...]
    invert: bool = False

    def sample(self, seed, image_size: Size,
               augmentation: MaskAugmentation | None = None) -> tf.Tensor:
        """A file picked uniformly by `seed`, as a mask [H, W, 1] (graph mode), changed
        by `augmentation` if given (its draws from another sub-seed of `seed`)."""
        image_hw = size_pair(image_size, "image_size")
        index = tf.random.stateless_uniform([], seed, minval=0, maxval=len(self.files),
                                            dtype=tf.int32)
        path = tf.gather(tf.constant(self.files), index)
        if augmentation is None:
            return _decode_mask(path, image_hw, self.invert)
        return augmentation(sub_seed(seed, 1), _read_holes(path, self.invert), image_hw)

    def load(self, index: int, image_size: Size) -> tf.Tensor:
        """The mask of file number `index` (in sorted order), as [H, W, 1]."""
        image_hw = size_pair(image_size, "image_size")
        if not -len(self.files) <= index < len(self.files):
            raise ValueError(f"index must be in [0, {len(self.files)}), got {index}.")
        return _decode_mask(tf.constant(self.files[index]), image_hw, self.invert)


def load_mask_folder(folder: str, invert: bool = False,
                     invert_flag: str | None = "--invert_masks") -> MaskFolder:
    """Lists the mask images under `folder` (recursively, sorted) and checks them.

    Every file's header is checked, and up to 64 files, evenly spread, are
    decoded in full (by PIL and by TensorFlow), so that problems show up before
    training rather than hours into it.

    Args:
      folder: the mask images (white = hole unless `invert`).
      invert: black = hole.
      invert_flag: the caller's flag that sets `invert`, named in the advice
        when the masks look inverted; None when the caller has none.

    Raises:
      FileNotFoundError: if `folder` does not exist.
      ValueError: if it holds no mask image; if a file is unreadable; if the
        checked masks look inverted (median hole coverage above 50 %); if a
        checked mask has no hole or no known pixel.
    """
    files = find_image_files(folder, MASK_EXTENSIONS)
    if not files:
        raise UserError(f"No mask image in {folder!r}: expected files ending in "
                         f"{', '.join(MASK_EXTENSIONS)}.")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        problems = [(p, r) for p, r in zip(files, pool.map(check_image_header, files)) if r]
    if problems:
        listed = "; ".join(f"{p}: {r}" for p, r in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise UserError(f"{len(problems)} of the {len(files)} mask files in {folder!r} cannot "
                         f"be used: {listed}{more}. Remove or replace them.")
    checked = sorted({round(i) for i in np.linspace(0, len(files) - 1, min(len(files), _FILES_CHECKED))})
    coverage = {files[i]: _checked_coverage(files[i], invert) for i in checked}

    hole = "black" if invert else "white"
    if all(c == 1.0 for c in coverage.values()):
        raise UserError(f"Every checked mask in {folder!r} ({len(coverage)} files) is all "
                         f"hole ({hole}): a mask needs known pixels around its hole.")
    median = float(np.median(list(coverage.values())))
    if median > 0.5:
        if invert_flag is None:
            advice = f"make {hole} the hole in the files"
        else:
            advice = f"pass {invert_flag}={'false' if invert else 'true'}"
        raise UserError(
            f"The masks in {folder!r} look inverted: the median hole coverage of {len(coverage)} "
            f"checked files is {median:.0%}. The suite reads {hole} as hole; if yours are "
            f"the other way round, {advice}.")
    no_hole = [p for p, c in coverage.items() if c == 0.0]
    no_known = [p for p, c in coverage.items() if c == 1.0]
    if no_hole or no_known:
        raise UserError(f"Unusable masks in {folder!r}: without a hole: {no_hole}; "
                         f"without a known pixel: {no_known}.")
    return MaskFolder(files=tuple(files), invert=invert)


# --------------------------------------------------------------------------
# Filling holes.
# --------------------------------------------------------------------------

def apply_fill(image, mask, fill) -> tf.Tensor:
    """`image` with hole pixels (mask > 0.5) set to `fill`, known pixels unchanged.

    image: [..., H, W, C]; mask: [..., H, W, 1] (broadcasts over channels and
    batch); fill: a scalar or a length-C vector, in the image range [-1, 1],
    e.g. IMAGENET_MEAN_FILL or GRAY_FILL.
    """
    image = tf.convert_to_tensor(image)
    fill = tf.cast(fill, image.dtype)
    if fill.shape.rank not in (0, 1):
        raise ValueError(f"fill must be a scalar or a per-channel vector, got shape {fill.shape}.")
    if fill.shape.rank == 1 and fill.shape[0] not in (1, image.shape[-1]):
        raise ValueError(f"fill has {fill.shape[0]} values for an image of {image.shape[-1]} channels.")
    holes = tf.convert_to_tensor(mask) > 0.5
    return tf.where(holes, tf.broadcast_to(fill, tf.shape(image)), image)


def blank_hole(image, mask) -> tf.Tensor:
    """`image` with every hole pixel set to the mean colour of that image's known pixels.

    image: [N, H, W, C]; mask: [N, H, W, 1] (> 0.5 = hole). Inference applies
    this first, before any resizing, padding or cropping, so that what lay
    under the hole can never reach a network (an antialiased resize or a
    reflected border would otherwise mix it into "known" pixels). The mean of
    the known pixels bleeds into a resized border as a plain colour would,
    without favouring black or white. An image without a known pixel keeps 0.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    known = tf.cast(tf.convert_to_tensor(mask) <= 0.5, tf.float32)
    count = tf.reduce_sum(known, axis=[1, 2], keepdims=True)
    mean = tf.reduce_sum(image * known, axis=[1, 2], keepdims=True) / tf.maximum(count, 1.0)
    return image * known + mean * (1.0 - known)
