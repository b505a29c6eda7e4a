"""Tests of reproductions/glcic/postprocess.py: known pixels untouched, holes at
borders and corners, removal of a colour offset, input checks and the batch
wrapper."""

import numpy as np
import pytest

from reproductions.glcic.postprocess import poisson_blend, poisson_blend_batch

H, W = 48, 64


def rect_mask(*slices):
    """HxW bool mask with the given (rows, cols) slices set as holes."""
    mask = np.zeros((H, W), bool)
    for rows, cols in slices:
        mask[rows, cols] = True
    return mask


def blob_mask(seed):
    """An irregular hole: thresholded smooth noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 8))
    smooth = np.kron(coarse, np.ones((8, 8)))
    return smooth > 0.6


MASKS = {
    "interior": rect_mask((slice(12, 30), slice(20, 45))),
    "top_left_corner": rect_mask((slice(0, 15), slice(0, 20))),
    "top_right_corner": rect_mask((slice(0, 12), slice(40, W))),
    "bottom_left_corner": rect_mask((slice(30, H), slice(0, 18))),
    "bottom_right_corner": rect_mask((slice(33, H), slice(45, W))),
    "left_edge_full_height": rect_mask((slice(0, H), slice(0, 10))),
    "band_left_to_right": rect_mask((slice(20, 30), slice(0, W))),
    "two_holes": rect_mask((slice(5, 18), slice(6, 22)), (slice(28, 42), slice(38, 58))),
    "one_pixel": rect_mask((slice(20, 21), slice(30, 31))),
    "thin_line": rect_mask((slice(10, 11), slice(5, 50))),
    "blob": blob_mask(3),
}


def random_pair(seed):
    """A random image (with garbage in no particular place) and completion."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    completed = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return image, completed


def gradient_image():
    """A gentle colour ramp (1-2 levels a pixel) in 40..175, so +40 cannot clip."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([40 + 2 * xx, 60 + yy, 50 + (xx + yy) // 2], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(MASKS))
def test_known_pixels_bit_identical_and_only_hole_changes(name):
    mask = MASKS[name]
    image, completed = random_pair(seed=len(name))
    out = poisson_blend(image, completed, mask)
    assert out.dtype == np.uint8 and out.shape == image.shape
    # Known pixels come from image, whatever image holds inside the hole.
    np.testing.assert_array_equal(out[~mask], image[~mask])
    composite = np.where(mask[..., None], completed, image)
    changed = np.any(out != composite, axis=-1)
    assert not np.any(changed & ~mask)


@pytest.mark.parametrize("name", ["interior", "top_left_corner", "bottom_right_corner",
                                  "left_edge_full_height", "band_left_to_right", "two_holes"])
def test_constant_colour_offset_is_removed(name):
    mask = MASKS[name]
    truth = gradient_image()
    completed = truth.copy()
    completed[mask] += 40
    image = truth.copy()
    image[mask] = 0  # hole content of the input must not matter
    out = poisson_blend(image, completed, mask)
    raw_mae = np.abs(completed[mask].astype(int) - truth[mask]).mean()
    blended_mae = np.abs(out[mask].astype(int) - truth[mask]).mean()
    assert raw_mae == 40
    assert blended_mae * 4 <= raw_mae, (name, blended_mae)


def test_uses_the_completion_inside_the_hole():
    # A feature present only in the completion must survive the blend.
    mask = MASKS["interior"]
    truth = gradient_image()
    completed = truth.copy()
    completed[18:24, 28:37] = 255
    out = poisson_blend(truth, completed, mask)
    feature = out[18:24, 28:37].astype(int) - truth[18:24, 28:37]
    assert feature.mean() > 30


def test_empty_mask_returns_a_copy_of_image():
    image, completed = random_pair(seed=0)
    out = poisson_blend(image, completed, np.zeros((H, W), np.uint8))
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_full_mask_returns_the_completion():
    image, completed = random_pair(seed=1)
    out = poisson_blend(image, completed, np.ones((H, W), bool))
    np.testing.assert_array_equal(out, completed)


def test_mask_formats_agree_and_inputs_are_not_modified():
    mask = MASKS["two_holes"]
    image, completed = random_pair(seed=2)
    copies = image.copy(), completed.copy()
    reference = poisson_blend(image, completed, mask)
    for variant in (mask.astype(np.uint8), mask.astype(np.uint8) * 255,
                    mask.astype(np.float32), mask[..., None], mask[..., None].astype(np.float64)):
        kept = variant.copy()
        np.testing.assert_array_equal(poisson_blend(image, completed, variant), reference)
        np.testing.assert_array_equal(variant, kept)
    np.testing.assert_array_equal(image, copies[0])
    np.testing.assert_array_equal(completed, copies[1])


def test_repeated_calls_give_the_same_result():
    mask = MASKS["blob"]
    image, completed = random_pair(seed=3)
    first = poisson_blend(image, completed, mask)
    for _ in range(3):
        np.testing.assert_array_equal(poisson_blend(image, completed, mask), first)


def test_channel_order_does_not_matter():
    # Both OpenCV steps are channel-wise, so RGB and BGR give the same blend.
    mask = MASKS["bottom_left_corner"]
    image, completed = random_pair(seed=4)
    rgb = poisson_blend(image, completed, mask)
    bgr = poisson_blend(image[..., ::-1], completed[..., ::-1], mask)
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)


@pytest.mark.parametrize("image, completed, mask, name", [
    (np.zeros((H, W, 3), np.uint8), np.zeros((H, W + 1, 3), np.uint8), np.zeros((H, W)), "completed"),
    (np.zeros((H, W, 3), np.float32), np.zeros((H, W, 3), np.uint8), np.zeros((H, W)), "image"),
    (np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.float32), np.zeros((H, W)), "completed"),
    (np.zeros((H, W, 1), np.uint8), np.zeros((H, W, 1), np.uint8), np.zeros((H, W)), "image"),
    (np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8), np.zeros((H, W)), "image"),
    (np.zeros((1, W, 3), np.uint8), np.zeros((1, W, 3), np.uint8), np.zeros((1, W)), "image"),
    (np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8), np.zeros((H, W - 1)), "mask"),
    (np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3)), "mask"),
    (np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8), np.full((H, W), np.nan), "mask"),
])
def test_bad_inputs_raise_naming_the_argument(image, completed, mask, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        poisson_blend(image, completed, mask)


def batch(seed, n=3):
    rng = np.random.default_rng(seed)
    images = rng.random((n, H, W, 3), dtype=np.float32)
    completed = rng.random((n, H, W, 3), dtype=np.float32)
    names = ["interior", "top_right_corner", "two_holes", "blob"]
    masks = np.stack([MASKS[names[i % len(names)]] for i in range(n)]).astype(np.float32)
    return images, completed, masks


def test_batch_round_trips_and_matches_single_image():
    images, completed, masks = batch(seed=5)
    out = poisson_blend_batch(images, completed, masks[..., None])
    assert out.dtype == np.float32 and out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    hole = masks.astype(bool)
    # Known pixels are the float input exactly, not a quantised copy of it.
    np.testing.assert_array_equal(out[~hole], images[~hole])
    for i in range(len(images)):
        single = poisson_blend(np.round(images[i] * 255).astype(np.uint8),
                               np.round(completed[i] * 255).astype(np.uint8), masks[i])
        np.testing.assert_array_equal(out[i][hole[i]], single[hole[i]].astype(np.float32) / 255)


def test_batch_removes_offset():
    truth = gradient_image().astype(np.float32) / 255
    mask = MASKS["top_left_corner"]
    completed = truth.copy()
    completed[mask] += 40 / 255
    out = poisson_blend_batch(truth[None], completed[None], mask[None])[0]
    assert np.abs(out[mask] - truth[mask]).mean() * 4 <= 40 / 255


@pytest.mark.parametrize("change, name", [
    (lambda i, c, m: (i * 255, c, m), "images01"),
    (lambda i, c, m: (i * 2 - 1, c, m), "images01"),
    (lambda i, c, m: ((i * 255).astype(np.uint8), c, m), "images01"),
    (lambda i, c, m: (i[0], c[0], m[0]), "images01"),
    (lambda i, c, m: (i, c[:, :, :-1], m), "completed01"),
    (lambda i, c, m: (i, c, m[:-1]), "masks"),
])
def test_batch_bad_inputs_raise_naming_the_argument(change, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        poisson_blend_batch(*change(*batch(seed=6)))
