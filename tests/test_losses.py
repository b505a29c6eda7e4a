"""Tests for common/losses.py against values worked out by hand on tiny tensors."""

import math

import numpy as np
import pytest
import tensorflow as tf

from common import losses


def _t(values):
    return tf.constant(values, dtype=tf.float32)


# pred - target = [[1, 2], [3, 4]] as a [1, 2, 2, 1] image.
PRED = _t([[[[1.0], [2.0]], [[3.0], [4.0]]]])
TARGET = tf.zeros_like(PRED)


def test_weighted_l2_without_weights_is_mse():
    # (1 + 4 + 9 + 16) / 4
    assert float(losses.weighted_l2(PRED, TARGET)) == pytest.approx(7.5)


def test_weighted_l2_with_broadcast_weight_map():
    weights = _t([[[[10.0], [1.0]], [[1.0], [2.0]]]])  # [1, 2, 2, 1]
    # (10*1 + 1*4 + 1*9 + 2*16) / 4 = 55 / 4
    assert float(losses.weighted_l2(PRED, TARGET, weights)) == pytest.approx(13.75)


def test_weighted_l2_mean_is_over_pred_elements_when_weights_broadcast():
    pred = tf.ones([2, 2, 2, 3])
    weights = _t([[[[2.0], [0.0]], [[0.0], [0.0]]]])  # one weighted pixel
    # 2 images * 3 channels * weight 2 * error 1 = 12, over 24 elements.
    assert float(losses.weighted_l2(pred, tf.zeros_like(pred), weights)) == pytest.approx(0.5)


def test_weighted_l1():
    weights = _t([[[[10.0], [1.0]], [[1.0], [2.0]]]])
    # (10 + 2 + 3 + 8) / 4
    assert float(losses.weighted_l1(PRED, TARGET, weights)) == pytest.approx(5.75)
    assert float(losses.weighted_l1(PRED, TARGET)) == pytest.approx(2.5)


def test_weighted_loss_rejects_weights_that_do_not_broadcast():
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        losses.weighted_l2(PRED, TARGET, tf.ones([3, 2, 2, 1]))


MASK = _t([[[[1.0], [0.0]], [[0.0], [1.0]]]])  # hole at pixels with errors 1 and 4


def test_masked_l2_all_divides_by_every_element():
    # (1 + 16) / 4 elements
    assert float(losses.masked_l2(PRED, TARGET, MASK, normalize="all")) == pytest.approx(4.25)


def test_masked_l2_hole_divides_by_hole_elements():
    # (1 + 16) / 2 hole pixels
    assert float(losses.masked_l2(PRED, TARGET, MASK, normalize="hole")) == pytest.approx(8.5)


def test_masked_l2_hole_counts_channels():
    pred = tf.concat([PRED, 2 * PRED, 3 * PRED], axis=-1)  # 3 channels
    # Hole errors: pixel 1 -> 1, 4, 9; pixel 4 -> 16, 64, 144; total 238 over 2*3.
    assert float(losses.masked_l2(pred, tf.zeros_like(pred), MASK, "hole")) == pytest.approx(238 / 6)
    assert float(losses.masked_l2(pred, tf.zeros_like(pred), MASK, "all")) == pytest.approx(238 / 12)


def test_masked_l1_both_normalisations():
    assert float(losses.masked_l1(PRED, TARGET, MASK, "all")) == pytest.approx(5 / 4)
    assert float(losses.masked_l1(PRED, TARGET, MASK, "hole")) == pytest.approx(5 / 2)


def test_masked_loss_ignores_known_pixels():
    changed = PRED + _t([[[[0.0], [100.0]], [[-50.0], [0.0]]]])  # only known pixels change
    for normalize in ("all", "hole"):
        assert float(losses.masked_l2(changed, TARGET, MASK, normalize)) == pytest.approx(
            float(losses.masked_l2(PRED, TARGET, MASK, normalize))
        )


def test_masked_loss_with_empty_mask_is_zero_not_nan():
    empty = tf.zeros_like(MASK)
    for normalize in ("all", "hole"):
        value = losses.masked_l2(PRED, TARGET, empty, normalize)
        assert float(value) == 0.0


def test_masked_loss_gradient_with_empty_mask_is_finite():
    pred = tf.Variable(PRED)
    with tf.GradientTape() as tape:
        loss = losses.masked_l1(pred, TARGET, tf.zeros_like(MASK), "hole")
    grad = tape.gradient(loss, pred)
    assert np.all(np.isfinite(grad.numpy()))


def test_masked_loss_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="normalize"):
        losses.masked_l2(PRED, TARGET, MASK, normalize="mean")


def test_losses_accept_float16_and_return_float32():
    value = losses.masked_l2(tf.cast(PRED, tf.float16), tf.cast(TARGET, tf.float16), MASK, "hole")
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx(8.5)
    assert losses.weighted_l1(tf.cast(PRED, tf.float16), TARGET).dtype == tf.float32


# ---------------------------------------------------------------------------
# GAN losses
# ---------------------------------------------------------------------------


def test_bce_of_zero_logit_is_log2():
    zeros = tf.zeros([4, 1])
    assert float(losses.bce_with_logits(zeros, True)) == pytest.approx(math.log(2))
    assert float(losses.bce_with_logits(zeros, False)) == pytest.approx(math.log(2))


def test_bce_against_hand_formula():
    logits = _t([[2.0], [-1.0]])
    sigmoid = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
    assert float(losses.bce_with_logits(logits, True)) == pytest.approx(-np.mean(np.log(sigmoid)), rel=1e-6)
    assert float(losses.bce_with_logits(logits, False)) == pytest.approx(-np.mean(np.log(1 - sigmoid)), rel=1e-6)


def test_bce_is_stable_for_large_logits():
    assert float(losses.bce_with_logits(_t([[100.0]]), True)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.bce_with_logits(_t([[100.0]]), False)) == pytest.approx(100.0)


def test_bce_requires_a_python_bool():
    with pytest.raises(ValueError, match="is_real"):
        losses.bce_with_logits(tf.zeros([1]), 1)


def test_discriminator_and_generator_bce():
    real, fake = _t([[0.0], [0.0]]), _t([[0.0], [0.0]])
    # log 2 + log 2: a sum of the two terms, not their mean.
    assert float(losses.discriminator_bce_loss(real, fake)) == pytest.approx(2 * math.log(2))
    fake = _t([[3.0]])
    assert float(losses.generator_bce_loss(fake)) == pytest.approx(math.log(1 + math.exp(-3.0)))


def test_ragan_losses_by_hand():
    real, fake = _t([[1.0], [3.0]]), _t([[0.0], [-2.0]])  # mean(real)=2, mean(fake)=-1
    real_vs_fake = np.array([2.0, 4.0])
    fake_vs_real = np.array([-2.0, -4.0])

    def softplus(x):
        return np.log1p(np.exp(x))

    # BCE(x, 1) = softplus(-x); BCE(x, 0) = softplus(x).
    d_expected = 0.5 * (np.mean(softplus(-real_vs_fake)) + np.mean(softplus(fake_vs_real)))
    g_expected = 0.5 * (np.mean(softplus(real_vs_fake)) + np.mean(softplus(-fake_vs_real)))
    assert float(losses.ragan_discriminator_loss(real, fake)) == pytest.approx(d_expected, rel=1e-6)
    assert float(losses.ragan_generator_loss(real, fake)) == pytest.approx(g_expected, rel=1e-6)


def test_ragan_generator_is_discriminator_with_roles_swapped():
    rng = np.random.default_rng(0)
    real, fake = _t(rng.normal(size=(8, 1))), _t(rng.normal(size=(8, 1)))
    assert float(losses.ragan_generator_loss(real, fake)) == pytest.approx(
        float(losses.ragan_discriminator_loss(fake, real)), rel=1e-6
    )


def test_ragan_generator_loss_does_not_backpropagate_into_real_logits():
    real, fake = tf.Variable(_t([[1.0], [2.0]])), tf.Variable(_t([[0.5], [-1.0]]))
    with tf.GradientTape() as tape:
        loss = losses.ragan_generator_loss(real, fake)
    grad_real, grad_fake = tape.gradient(loss, [real, fake])
    assert grad_real is None
    assert np.any(grad_fake.numpy() != 0)


def test_gan_losses_run_under_xla_with_float16_logits():
    @tf.function(jit_compile=True)
    def all_losses(real, fake):
        return tf.stack(
            [
                losses.discriminator_bce_loss(real, fake),
                losses.generator_bce_loss(fake),
                losses.ragan_discriminator_loss(real, fake),
                losses.ragan_generator_loss(real, fake),
            ]
        )

    values = all_losses(tf.zeros([2, 1], tf.float16), tf.zeros([2, 1], tf.float16))
    assert values.dtype == tf.float32
    np.testing.assert_allclose(values.numpy(), [2 * math.log(2), math.log(2), math.log(2), math.log(2)], rtol=1e-6)
