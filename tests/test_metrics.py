"""Tests for common/metrics.py: hand-computed values and agreement with tf.image and skimage."""

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from common import metrics


def _random_images(seed, shape=(2, 32, 32, 3)):
    """Images in [-1, 1]."""
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, size=shape), dtype=tf.float32)


def _square_hole(n=2, size=32, start=8, stop=24):
    mask = np.zeros((n, size, size, 1), np.float32)
    mask[:, start:stop, start:stop] = 1.0
    return tf.constant(mask)


def _smooth_images(seed, shape=(2, 32, 32, 3)):
    """Blurred noise in [-1, 1]: gives SSIM values well inside (0, 1)."""
    noise = _random_images(seed, shape)
    kernel = tf.ones([5, 5, shape[-1], 1]) / 25.0
    return tf.clip_by_value(tf.nn.depthwise_conv2d(noise, kernel, [1, 1, 1, 1], "SAME") * 3, -1, 1)


def test_psnr_of_constant_offset():
    target = tf.zeros([2, 16, 16, 3])  # 0.5 in [0, 1] units
    pred = target + 0.2  # +0.1 in [0, 1] units -> MSE 0.01 -> 20 dB
    np.testing.assert_allclose(metrics.psnr(pred, target).numpy(), [20.0, 20.0], rtol=1e-5)


def test_psnr_of_identical_images_is_max_psnr():
    images = _random_images(0)
    np.testing.assert_allclose(metrics.psnr(images, images).numpy(), [100.0, 100.0])
    np.testing.assert_allclose(metrics.psnr(images, images, max_psnr=60.0).numpy(), [60.0, 60.0], rtol=1e-6)


def test_psnr_rejects_bad_max_psnr():
    with pytest.raises(ValueError, match="max_psnr"):
        metrics.psnr(tf.zeros([1, 4, 4, 3]), tf.zeros([1, 4, 4, 3]), max_psnr=0)


def test_psnr_matches_tf_image_psnr():
    pred, target = _random_images(1), _random_images(2)
    expected = tf.image.psnr((pred + 1) / 2, (target + 1) / 2, max_val=1.0)
    np.testing.assert_allclose(metrics.psnr(pred, target).numpy(), expected.numpy(), rtol=1e-5)


def test_l1_and_l2_in_unit_range():
    target = tf.zeros([1, 4, 4, 3])
    pred = target + 0.2  # 0.1 in [0, 1] units
    np.testing.assert_allclose(metrics.l1(pred, target).numpy(), [0.1], rtol=1e-5)
    np.testing.assert_allclose(metrics.l2(pred, target).numpy(), [0.01], rtol=1e-5)


def test_inputs_outside_range_are_clipped():
    target = tf.ones([1, 4, 4, 3])
    np.testing.assert_allclose(metrics.l1(target + 5.0, target).numpy(), [0.0])


def test_masked_l1_l2_psnr_by_hand():
    target = tf.zeros([1, 2, 2, 1])
    # Errors in [0, 1] units: 0.1 at the hole pixel, 0.3 at a known pixel.
    pred = tf.constant([[[[0.2], [0.6]], [[0.0], [0.0]]]])
    mask = tf.constant([[[[1.0], [0.0]], [[0.0], [0.0]]]])
    np.testing.assert_allclose(metrics.l1(pred, target, mask).numpy(), [0.1], rtol=1e-5)
    np.testing.assert_allclose(metrics.l2(pred, target, mask).numpy(), [0.01], rtol=1e-5)
    np.testing.assert_allclose(metrics.psnr(pred, target, mask).numpy(), [20.0], rtol=1e-5)
    np.testing.assert_allclose(metrics.l1(pred, target).numpy(), [0.1], rtol=1e-5)  # (0.1 + 0.3) / 4


def test_hole_metrics_ignore_known_pixels():
    target, pred = _smooth_images(3), _smooth_images(4)
    mask = _square_hole()
    # Change pixels far (> 5 px) from the hole so no SSIM window centred in it sees them.
    known = np.zeros((2, 32, 32, 3), np.float32)
    known[:, 0:2, :, :] = 0.7
    known[:, :, 29:, :] = -0.4
    changed = tf.clip_by_value(pred + known, -1, 1)
    before = metrics.inpainting_metrics(pred, target, mask)
    after = metrics.inpainting_metrics(changed, target, mask)
    for name in ("psnr_hole", "ssim_hole", "l1_hole", "l2_hole"):
        assert float(after[name]) == pytest.approx(float(before[name]), rel=1e-6), name
    for name in ("psnr", "ssim", "l1", "l2"):
        assert float(after[name]) != pytest.approx(float(before[name]), rel=1e-6), name


def test_hole_metrics_see_hole_pixels():
    target, pred = _smooth_images(3), _smooth_images(4)
    mask = _square_hole()
    changed = pred + 0.3 * mask
    before = metrics.inpainting_metrics(pred, target, mask)
    after = metrics.inpainting_metrics(changed, target, mask)
    for name in ("psnr_hole", "ssim_hole", "l1_hole", "l2_hole"):
        assert float(after[name]) != pytest.approx(float(before[name]), rel=1e-4), name


def test_ssim_of_identical_images_is_one():
    images = _random_images(5)
    np.testing.assert_allclose(metrics.ssim(images, images).numpy(), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(metrics.ssim(images, images, _square_hole()).numpy(), [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("make_images", [_random_images, _smooth_images])
def test_ssim_matches_tf_image_ssim(make_images):
    pred, target = make_images(6), make_images(7)
    expected = tf.image.ssim((pred + 1) / 2, (target + 1) / 2, max_val=1.0)
    np.testing.assert_allclose(metrics.ssim(pred, target).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("make_images", [_random_images, _smooth_images])
def test_ssim_matches_skimage(make_images):
    pred, target = make_images(8).numpy(), make_images(9).numpy()
    ours = metrics.ssim(tf.constant(pred), tf.constant(target)).numpy()
    for i in range(pred.shape[0]):
        expected = structural_similarity(
            (pred[i] + 1) / 2,
            (target[i] + 1) / 2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert ours[i] == pytest.approx(expected, abs=1e-4)


def test_masked_ssim_averages_the_map_over_hole_centres():
    pred, target = _smooth_images(10), _smooth_images(11)
    mask = _square_hole()
    ssim_map = metrics.ssim_map((pred + 1) / 2, (target + 1) / 2).numpy().mean(axis=-1)
    # Map pixel (i, j) is the window centred on image pixel (i + 5, j + 5).
    expected = ssim_map[:, 8 - 5 : 24 - 5, 8 - 5 : 24 - 5].mean(axis=(1, 2))
    np.testing.assert_allclose(metrics.ssim(pred, target, mask).numpy(), expected, rtol=1e-5)


def test_empty_hole_gives_nan_and_is_left_out_of_batch_means():
    pred, target = _random_images(12), _random_images(13)
    mask = _square_hole().numpy()
    mask[1] = 0.0  # second image has no hole
    mask = tf.constant(mask)
    assert np.isnan(metrics.l2(pred, target, mask).numpy()[1])
    assert np.isnan(metrics.psnr(pred, target, mask).numpy()[1])
    assert np.isnan(metrics.ssim(pred, target, mask).numpy()[1])
    result = metrics.inpainting_metrics(pred, target, mask)
    first_only = metrics.inpainting_metrics(pred[:1], target[:1], mask[:1])
    for name in ("psnr_hole", "ssim_hole", "l1_hole", "l2_hole"):
        assert float(result[name]) == pytest.approx(float(first_only[name]), rel=1e-6), name
    # Whole-image metrics still average over both images.
    assert float(result["l1"]) == pytest.approx(float(tf.reduce_mean(metrics.l1(pred, target))), rel=1e-6)


def test_inpainting_metrics_keys_and_batch_means():
    pred, target = _random_images(14), _random_images(15)
    mask = _square_hole()
    result = metrics.inpainting_metrics(pred, target, mask)
    assert set(result) == {"psnr", "ssim", "l1", "l2", "psnr_hole", "ssim_hole", "l1_hole", "l2_hole"}
    assert float(result["psnr"]) == pytest.approx(float(tf.reduce_mean(metrics.psnr(pred, target))), rel=1e-6)
    assert float(result["l1_hole"]) == pytest.approx(float(tf.reduce_mean(metrics.l1(pred, target, mask))), rel=1e-6)


def test_metrics_run_in_tf_function_with_float16_inputs():
    pred, target = _random_images(16), _random_images(17)
    mask = _square_hole()
    compiled = tf.function(metrics.inpainting_metrics)
    result = compiled(tf.cast(pred, tf.float16), tf.cast(target, tf.float16), mask)
    eager = metrics.inpainting_metrics(pred, target, mask)
    for name in result:
        assert result[name].dtype == tf.float32
        assert float(result[name]) == pytest.approx(float(eager[name]), rel=1e-2), name


def test_bad_mask_shape_is_rejected():
    images = _random_images(18)
    with pytest.raises(ValueError, match="mask"):
        metrics.l1(images, images, tf.ones([2, 16, 16, 1]))
    with pytest.raises(ValueError, match="mask"):
        metrics.l1(images, images, tf.ones([2, 32, 32, 3]))


def test_ssim_rejects_tiny_images():
    with pytest.raises(ValueError, match="ssim"):
        metrics.ssim(tf.zeros([1, 8, 8, 3]), tf.zeros([1, 8, 8, 3]))
