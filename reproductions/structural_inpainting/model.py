"""Structural Inpainting networks, as in the public TensorFlow port (model.py).

Generator, for a 128x128 input in [0, 1] with the inner 56x56 of the centre
filled with gray 0.437 (no mask channel); every conv has a bias and ReLU,
the output's included (`tf.contrib.layers.conv2d`'s default, which the port
does not override, so its prediction is never negative):

  encoder  five 4x4 stride-2 convs: 64, 64, 128, 256, 512 (128 -> 4x4)
           a 4x4 "valid" conv to a 2000-channel bottleneck (1x1)
  decoder  nearest-neighbour resize to 4, 8, 16, 32, 64, each followed by a
           4x4 stride-1 conv: 512, 256, 128, 64, and 3: the 64x64 centre.

Discriminator, on the 64x64 centre patch: 4x4 stride-2 convs 32, 64, 128,
256 with ReLU, flatten, one fully connected logit. No normalisation anywhere.
The port's logit is ReLU'd too (`fully_connected`'s default): `logit_relu`
gives that form; by default the logit is linear (see the README, Deviations).

`width` scales every channel count (64 in the port) and `bottleneck` the
bottleneck; both exist for demos and tests, the port's values are defaults.
"""

from __future__ import annotations

import keras
from keras import layers

ARCHITECTURES = ("port", "context_encoder")
# The generator's last activation: the port's ReLU, or none (runs written
# before the suite followed the port here; their config.json lacks the field).
OUTPUT_ACTIVATIONS = ("relu", "linear")


def build_generator(width: int = 64, bottleneck: int = 2000,
                    output_activation: str = "relu") -> keras.Model:
    """The port's encoder-decoder: [N, 128, 128, 3] -> [N, 64, 64, 3]."""
    inputs = keras.Input((128, 128, 3), name="masked_image")
    x = inputs
    for i, multiple in enumerate((1, 1, 2, 4, 8), start=1):
        x = layers.Conv2D(width * multiple, 4, strides=2, padding="same", activation="relu",
                          name=f"enc{i}")(x)
    x = layers.Conv2D(bottleneck, 4, padding="valid", activation="relu", name="bottleneck")(x)
    # Resize 1 -> 4 first, then double: the port resizes to 4, 8, 16, 32, 64.
    for i, (factor, multiple) in enumerate(((4, 8), (2, 4), (2, 2), (2, 1)), start=1):
        x = layers.UpSampling2D(factor, interpolation="nearest", name=f"resize{i}")(x)
        x = layers.Conv2D(width * multiple, 4, padding="same", activation="relu",
                          name=f"dec{i}")(x)
    x = layers.UpSampling2D(2, interpolation="nearest", name="resize5")(x)
    outputs = layers.Conv2D(3, 4, padding="same", activation=output_activation, dtype="float32",
                            name="output")(x)
    return keras.Model(inputs, outputs, name="structural_inpainting_generator")


def build_discriminator(width: int = 32, logit_relu: bool = False) -> keras.Model:
    """The port's discriminator on the 64x64 patch; one logit per image (ReLU'd with
    `logit_relu`, as the port's, which passes no gradient through a negative logit)."""
    inputs = keras.Input((64, 64, 3), name="patch")
    x = inputs
    for i, multiple in enumerate((1, 2, 4, 8), start=1):
        x = layers.Conv2D(width * multiple, 4, strides=2, padding="same", activation="relu",
                          name=f"conv{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(1, activation="relu" if logit_relu else None, dtype="float32",
                           name="logit")(x)
    return keras.Model(inputs, outputs, name="structural_inpainting_discriminator")
