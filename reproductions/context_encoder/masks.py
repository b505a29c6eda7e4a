"""Context Encoders' random-region mask (train_random.lua): thresholded smooth noise."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from common import masks as common_masks
from common.masks import Size

# Windows tried at once in each loop iteration. At the defaults (128 px,
# coverage in (0.2, 0.3)) 22 % of windows are accepted: bicubic smoothing
# pulls the noise towards 0.5, so the mean coverage is 0.167, not 0.25
# (measured over 20,000 windows). One iteration of 8 then fails with
# probability 0.78 ** 8 ~ 0.14, and 20 iterations with 0.78 ** 160 ~ 5e-18:
# the fallback of `random_region_mask` is practically never used, while the
# loop usually stops after the first iteration (1.16 on average).
_REGION_CANDIDATES_PER_TRY = 8
_REGION_MAX_TRIES = 20
# Noise cells kept beyond the window on each side. Bicubic interpolation reads
# 2 cells on each side, and edge cells of the resized grid are distorted by
# the border clamp: 2 clean cells keep the window away from them.
_REGION_MARGIN_CELLS = 2


def _region_noise_windows(seed, image_hw: tuple[int, int], resolution: float,
                          count: int) -> tf.Tensor:
    """`count` windows [count, H, W] of bicubic-upsampled uniform noise.

    One noise cell spans 1/resolution px, as in the official 10000 px pattern
    built from 10000 * resolution cells. The pattern is stationary, so a window
    of it is made from a small noise grid that covers the window, a random
    sub-cell offset and a margin: the same statistics at a fraction of the cost.
    """
    # Draws within one try: the noise, then the window offsets.
    noise_draw, offset_draw = 0, 1
    cell_px = 1.0 / resolution
    grid = [math.ceil(n * resolution) + 1 + 2 * _REGION_MARGIN_CELLS for n in image_hw]
    upsampled_hw = [round(g * cell_px) for g in grid]
    noise = tf.random.stateless_uniform([count, grid[0], grid[1], 1], common_masks.sub_seed(seed, noise_draw))
    pattern = tf.image.resize(noise, upsampled_hw, method="bicubic")[..., 0]

    # Each window starts at a random pixel inside the first clean cell.
    first = round(_REGION_MARGIN_CELLS * cell_px)
    offsets = tf.random.stateless_uniform(
        [count, 2], common_masks.sub_seed(seed, offset_draw), minval=first,
        maxval=first + math.ceil(cell_px), dtype=tf.int32)
    rows = offsets[:, 0:1] + tf.range(image_hw[0])[tf.newaxis]
    cols = offsets[:, 1:2] + tf.range(image_hw[1])[tf.newaxis]
    windows = tf.gather(pattern, rows, axis=1, batch_dims=1)
    return tf.gather(windows, cols, axis=2, batch_dims=1)


def _holes_by_rank(values: tf.Tensor, coverage: float) -> tf.Tensor:
    """Float mask of the round(coverage * size) lowest `values`: exact coverage."""
    flat = tf.reshape(values, [-1])
    size = flat.shape[0]
    hole_count = min(size, round(coverage * size))
    lowest = tf.argsort(flat)[:hole_count]
    holes = tf.scatter_nd(lowest[:, tf.newaxis], tf.ones([hole_count]), [size])
    return tf.reshape(holes, tf.shape(values))


def random_region_mask(seed, image_size: Size = 128, min_coverage: float = 0.2,
                       max_coverage: float = 0.3, resolution: float = 0.06, density: float = 0.25,
                       max_tries: int = _REGION_MAX_TRIES) -> tf.Tensor:
    """Context Encoders' random-region mask (train_random.lua), one per sample.

    The official code builds one 10000 px pattern: uniform noise with one cell
    per 1/resolution px, bicubic-upsampled, thresholded `< density` (hole),
    and takes random windows until the hole coverage is strictly between
    min_coverage and max_coverage. It also uses one mask for a whole batch;
    here each sample gets its own.

    Each `tf.while_loop` iteration draws 8 windows at once (vectorised) and
    keeps the first valid one; it stops at the first iteration with a valid
    window or after `max_tries` iterations. Fallback, if no window was valid:
    the window whose coverage was nearest the range is thresholded by rank
    instead of at `density`, so that its coverage is the middle of the range
    (up to half a pixel of rounding). At the defaults this fallback has a
    probability of about 5e-18 (see _REGION_CANDIDATES_PER_TRY); with a narrow
    or unusual coverage range it may not be.
    """
    image_hw = common_masks.size_pair(image_size, "image_size")
    if not 0.0 <= min_coverage < max_coverage <= 1.0:
        raise ValueError("min_coverage and max_coverage must satisfy 0 <= min_coverage < "
                         f"max_coverage <= 1, got {min_coverage!r} and {max_coverage!r}.")
    if not 0.0 < resolution <= 1.0:
        raise ValueError(f"resolution (noise cells per px) must be in (0, 1], got {resolution!r}.")
    if not 0.0 < density < 1.0:
        raise ValueError(f"density (noise threshold) must be in (0, 1), got {density!r}.")
    if not isinstance(max_tries, int) or max_tries < 1:
        raise ValueError(f"max_tries must be an int >= 1, got {max_tries!r}.")

    count = _REGION_CANDIDATES_PER_TRY
    num_pixels = image_hw[0] * image_hw[1]

    def distance_to_range(coverage):
        # 0 for an accepted window (strictly inside the range), > 0 otherwise.
        inside = (coverage > min_coverage) & (coverage < max_coverage)
        outside = tf.maximum(min_coverage - coverage, coverage - max_coverage)
        return tf.where(inside, tf.zeros_like(coverage), tf.maximum(outside, 1e-12))

    def try_windows(tries, best_window, best_distance):
        windows = _region_noise_windows(common_masks.sub_seed(seed, tries), image_hw, resolution, count)
        # float64, so that the strict bounds are tested on exactly count / size.
        hole_counts = tf.reduce_sum(tf.cast(windows < density, tf.float64), axis=[1, 2])
        distance = distance_to_range(hole_counts / num_pixels)
        # The first window with the smallest distance (argmin leaves ties unspecified).
        nearest = tf.reduce_min(tf.where(distance == tf.reduce_min(distance), tf.range(count), count))
        better = distance[nearest] < best_distance
        return (tries + 1,
                tf.where(better, windows[nearest], best_window),
                tf.where(better, distance[nearest], best_distance))

    def keep_trying(tries, best_window, best_distance):
        return (tries < max_tries) & (best_distance > 0)

    _, window, distance = tf.while_loop(
        keep_trying, try_windows,
        (tf.constant(0), tf.zeros(image_hw), tf.constant(np.inf, tf.float64)))

    mask = tf.cond(
        distance > 0,
        lambda: _holes_by_rank(window, (min_coverage + max_coverage) / 2),
        lambda: tf.cast(window < density, tf.float32))
    return tf.reshape(mask, [image_hw[0], image_hw[1], 1])
