"""Context Encoders networks, as in the official Torch code (train.lua, train_random.lua).

Center-region generator, for a 128x128 input (Torch k4 s2 p1 convolutions are
Keras k4 s2 "same" for even sizes):

  encoder  conv 64 (no BN) -> conv 64 -> conv 128 -> conv 256 -> conv 512,
           each 4x4 stride 2 with LeakyReLU 0.2 (BN from the second on),
           then a 4x4 "valid" conv to the 4000-channel bottleneck + BN + LeakyReLU
  decoder  4x4 "valid" transposed conv to 512 (4x4), then transposed convs
           256 -> 128 -> 64 -> 3 (stride 2), BN + ReLU, tanh output: 64x64x3.

The random-region generator adds one 64-channel transposed conv (+ BN + ReLU)
before the output, so it returns the full 128x128 image; its discriminator adds
one 64-channel conv (+ BN) after the first.

Conv layers have no bias: the official closures zero every convolution bias
before each update, so biases never train. Initialisation follows
`weights_init`: conv weights N(0, 0.02), BN gamma N(1, 0.02), beta 0.
"""

from __future__ import annotations

import keras
from keras import layers

from common import model_utils
from common.errors import UserError
from common.model_utils import normal_initializer

VARIANTS = ("center", "random_region")


def _batch_norm(name: str) -> layers.Layer:
    # DCGAN's N(1, 0.02) scale initialisation, as in the official code.
    return model_utils.batch_norm(name, gamma_initializer=normal_initializer(1.0, 0.02))


def _conv(filters: int, name: str, strides: int = 2, padding: str = "same") -> layers.Layer:
    return layers.Conv2D(filters, 4, strides=strides, padding=padding, use_bias=False,
                         kernel_initializer=normal_initializer(0.0, 0.02), name=name)


def _deconv(filters: int, name: str, strides: int = 2, padding: str = "same") -> layers.Layer:
    return layers.Conv2DTranspose(filters, 4, strides=strides, padding=padding, use_bias=False,
                                  kernel_initializer=normal_initializer(0.0, 0.02), name=name)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")


def build_generator(variant: str = "center", ngf: int = 64, nef: int = 64,
                    bottleneck: int = 4000, image_size: int = 128) -> keras.Model:
    """The encoder-decoder. Input: 128x128x3 in [-1, 1], holes filled.

    Returns a model whose output is the 64x64 centre (center variant) or the
    full image (random_region variant), tanh, float32.
    """
    _check_variant(variant)
    if image_size != 128:
        raise UserError(f"The official networks are defined for 128x128 inputs, got {image_size}.")
    inputs = keras.Input((image_size, image_size, 3), name="masked_image")
    x = _conv(nef, "enc1")(inputs)
    x = layers.LeakyReLU(0.2)(x)
    for i, filters in enumerate((nef, nef * 2, nef * 4, nef * 8), start=2):
        x = _conv(filters, f"enc{i}")(x)
        x = _batch_norm(f"enc{i}_bn")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = _conv(bottleneck, "bottleneck", strides=1, padding="valid")(x)  # 1x1xbottleneck
    x = _batch_norm("bottleneck_bn")(x)
    x = layers.LeakyReLU(0.2)(x)

    x = _deconv(ngf * 8, "dec1", strides=1, padding="valid")(x)  # 4x4
    x = _batch_norm("dec1_bn")(x)
    x = layers.ReLU()(x)
    decoder_filters = [ngf * 4, ngf * 2, ngf]
    if variant == "random_region":
        decoder_filters.append(ngf)  # one more upsampling: full 128x128 output
    for i, filters in enumerate(decoder_filters, start=2):
        x = _deconv(filters, f"dec{i}")(x)
        x = _batch_norm(f"dec{i}_bn")(x)
        x = layers.ReLU()(x)
    x = _deconv(3, "output")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=f"context_encoder_{variant}_generator")


def build_discriminator(variant: str = "center", ndf: int = 64) -> keras.Model:
    """The adversarial discriminator; returns one logit per image (float32).

    The official network ends in a sigmoid trained with BCE; we return the
    logit and use the equivalent, numerically stable BCE-with-logits.
    Input: the 64x64 centre patch (center) or the 128x128 image (random_region).
    """
    _check_variant(variant)
    size = 64 if variant == "center" else 128
    inputs = keras.Input((size, size, 3), name="image")
    x = _conv(ndf, "conv1")(inputs)
    x = layers.LeakyReLU(0.2)(x)
    filters = [ndf * 2, ndf * 4, ndf * 8]
    if variant == "random_region":
        filters.insert(0, ndf)
    for i, f in enumerate(filters, start=2):
        x = _conv(f, f"conv{i}")(x)
        x = _batch_norm(f"conv{i}_bn")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = _conv(1, "logit", strides=1, padding="valid")(x)  # 1x1x1
    outputs = layers.Reshape((1,), dtype="float32", name="flatten")(x)
    return keras.Model(inputs, outputs, name=f"context_encoder_{variant}_discriminator")

