"""Losses shared by several papers: weighted / masked pixel losses and GAN losses.

All functions take tensors and return a float32 scalar. They are written with
`tf` ops so they run inside `tf.function` and XLA. Under mixed precision the
inputs may be float16; every function casts to float32 first, because squared
errors and log-sigmoids lose too much precision (or overflow) in float16.

Masks follow the suite's convention: float32 [N, H, W, 1], 1 = hole.
GAN losses take discriminator *logits* (no sigmoid applied).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

NORMALIZATIONS = ("all", "hole")


def _as_float32(*tensors: tf.Tensor) -> tuple[tf.Tensor, ...]:
    return [tf.cast(t, tf.float32) for t in tensors]


# ---------------------------------------------------------------------------
# Pixel losses
# ---------------------------------------------------------------------------


def weighted_l2(pred: tf.Tensor, target: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
    """Mean over all elements of `weights * (pred - target)^2`.

    Args:
      pred, target: tensors of the same shape, e.g. [N, H, W, C].
      weights: None (plain MSE) or a tensor broadcastable to `pred`, e.g. a
        [1, H, W, 1] map. The mean is over the elements of `pred`, not over
        the weights, so a weight map of 10 on a border ring and 1 elsewhere
        reproduces Context Encoders' `W * MSE` objective.

    Returns:
      A float32 scalar.
    """
    return _weighted_mean_error(pred, target, weights, tf.math.squared_difference)


def weighted_l1(pred: tf.Tensor, target: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
    """Mean over all elements of `weights * |pred - target|`; see `weighted_l2`."""
    return _weighted_mean_error(pred, target, weights, lambda p, t: tf.abs(p - t))


def _weighted_mean_error(pred: tf.Tensor, target: tf.Tensor, weights: tf.Tensor | None,
                         elementwise_error: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> tf.Tensor:
    pred, target = _as_float32(pred, target)
    error = elementwise_error(pred, target)
    if weights is not None:
        # broadcast_to (not a bare multiply) so that a weight map larger than
        # `pred` fails loudly instead of silently changing the denominator.
        error = error * tf.broadcast_to(tf.cast(weights, tf.float32), tf.shape(error))
    return tf.reduce_mean(error)


def masked_l2(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor,
              normalize: str = "all") -> tf.Tensor:
    """Squared error counted only inside the hole (mask == 1).

    Args:
      pred, target: [N, H, W, C] tensors.
      mask: [N, H, W, 1] (or broadcastable), 1 = hole.
      normalize: how the summed hole error is divided.
        "all": by the number of elements of `pred` (N*H*W*C), i.e. the mean
          over all pixels of `mask * (pred - target)^2`. This is what the
          GLCIC ports compute; the loss then shrinks with the hole area.
        "hole": by the number of hole elements times channels, i.e. the mean
          squared error *per hole pixel*. An empty mask gives 0, not NaN.

    Returns:
      A float32 scalar.
    """
    return _masked_mean_error(pred, target, mask, normalize, tf.math.squared_difference)


def masked_l1(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor,
              normalize: str = "all") -> tf.Tensor:
    """Absolute error counted only inside the hole; see `masked_l2`."""
    return _masked_mean_error(pred, target, mask, normalize, lambda p, t: tf.abs(p - t))


def _masked_mean_error(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor, normalize: str,
                       elementwise_error: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> tf.Tensor:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
    pred, target, mask = _as_float32(pred, target, mask)
    error = elementwise_error(pred, target)
    # Broadcasting the mask over channels makes its sum count hole *elements*.
    mask = tf.broadcast_to(mask, tf.shape(error))
    hole_error = tf.reduce_sum(mask * error)
    if normalize == "all":
        return hole_error / tf.cast(tf.size(error), tf.float32)
    # divide_no_nan: an image batch without holes has nothing to reconstruct.
    return tf.math.divide_no_nan(hole_error, tf.reduce_sum(mask))


# ---------------------------------------------------------------------------
# GAN losses (on logits)
# ---------------------------------------------------------------------------


def bce_with_logits(logits: tf.Tensor, is_real: bool) -> tf.Tensor:
    """Mean sigmoid cross-entropy of `logits` against all-ones or all-zeros labels.

    Args:
      logits: discriminator outputs before the sigmoid, any shape.
      is_real: Python bool; True compares with label 1, False with label 0.

    Returns:
      A float32 scalar. A logit of 0 gives log(2) for either label.
    """
    if not isinstance(is_real, bool):
        raise ValueError(f"is_real must be a Python bool, got {is_real!r}.")
    (logits,) = _as_float32(logits)
    labels = tf.ones_like(logits) if is_real else tf.zeros_like(logits)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_bce_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Standard GAN discriminator loss: BCE(real, 1) + BCE(fake, 0).

    A sum, like Torch's `errD_real + errD_fake` in Context Encoders; papers that
    average the two terms can halve it.
    """
    return bce_with_logits(real_logits, True) + bce_with_logits(fake_logits, False)


def generator_bce_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss: BCE(fake, 1)."""
    return bce_with_logits(fake_logits, True)


def batch_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean of `x` over the global batch, also when it is split over replicas.

    A plain `reduce_mean` on one replica would see only its share of the batch.
    The sum and count are all-reduced instead; the all-reduce's gradient is
    the all-reduce of the upstream gradients, so gradients stay exact too.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.reduce_mean(x)
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(x))
    count = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.size(x), x.dtype))
    return total / count


def ragan_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Relativistic average GAN discriminator loss, as in DMFN's official code.

    [BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)] / 2.
    The means are over all elements of the logits (the batch, for [N, 1]
    logits), like `torch.mean` in the reference implementation, and over the
    global batch when it is split over replicas (`batch_mean`).
    """
    real_logits, fake_logits = _as_float32(real_logits, fake_logits)
    real_vs_fake = real_logits - batch_mean(fake_logits)
    fake_vs_real = fake_logits - batch_mean(real_logits)
    return 0.5 * (bce_with_logits(real_vs_fake, True) + bce_with_logits(fake_vs_real, False))


def ragan_generator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Relativistic average GAN generator loss, as in DMFN's official code.

    [BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1)] / 2, with the real
    logits under stop_gradient (DMFN detaches D(real)): the generator is
    pushed through the fake logits only. Equals `ragan_discriminator_loss`
    with the roles of real and fake swapped.
    """
    real_logits, fake_logits = _as_float32(real_logits, fake_logits)
    real_logits = tf.stop_gradient(real_logits)
    real_vs_fake = real_logits - batch_mean(fake_logits)
    fake_vs_real = fake_logits - batch_mean(real_logits)
    return 0.5 * (bce_with_logits(real_vs_fake, False) + bce_with_logits(fake_vs_real, True))
