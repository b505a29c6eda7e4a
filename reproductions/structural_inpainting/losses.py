"""Structural Inpainting's own loss: feature reconstruction through a frozen VGG16.

  L_feat = sum over taps l of  w_l * mean((phi_l(pred) / 255 - phi_l(target) / 255)^2)

phi_l are the post-ReLU conv1_1, conv2_1 and conv3_1 features of the Caffe
VGG16 (RGB in [0, 255] -> BGR -> mean subtraction), divided by 255 as the
port does, each compared by its mean squared error; w_l = 1 by default. The
structural loss adds the reconstruction MSE: L_struct = L_rec + lambda_feat * L_feat.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from common import vgg

FEATURE_SCALE = 1.0 / 255.0  # the port's features are divided by 255


def feature_reconstruction_loss(extractor: vgg.FeatureExtractor, prediction: tf.Tensor,
                                target: tf.Tensor, layer_weights: Mapping[str, float]
                                ) -> tf.Tensor:
    """Weighted sum over VGG taps of the MSE between features; images in [0, 1].

    No gradient reaches the VGG weights (the extractor is frozen); the target's
    features need none either.
    """
    predicted = extractor(prediction * 2.0 - 1.0)
    wanted = extractor(tf.stop_gradient(target) * 2.0 - 1.0)
    total = tf.constant(0.0, tf.float32)
    for name, weight in layer_weights.items():
        difference = (predicted[name] - tf.stop_gradient(wanted[name])) * FEATURE_SCALE
        total += weight * tf.reduce_mean(tf.square(difference))
    return total
