"""DMFN networks, as in the authors' code (Zheng222/DMFN, models/architecture.py, block.py).

Generator (4-channel input: the image in [-1, 1] with the hole set to 0, and
the mask), instance normalisation without affine parameters, zero padding:

  enc  conv 5x5 64 + ReLU; conv 3x3 /2 128; conv 3x3 128; conv 3x3 /2 256  (IN + ReLU)
  body 8 dense multi-scale fusion blocks (DMFB) at 1/4 resolution
  dec  conv 3x3 256; transposed 4x4 /2 128, conv 3x3 128; transposed 4x4 /2 64, conv 3x3 64
       (IN + ReLU); conv 3x3 3 + tanh

DMFB as coded ("official"): t = ReLU(IN(conv3x3 256->64 (x))); four 3x3 convs
of t with dilation 1, 2, 4, 8 summed cumulatively (k1 = d1, k2 = k1 + d2, ...);
concat -> IN -> ReLU -> conv3x3 256 -> IN; plus x.

DMFB of the paper's figure ("paper"): t as above; k1 = conv3x3(t); for dilation
2, 4, 8, k_i = ReLU(IN(conv3x3(dilated_conv(t) + k_{i-1}))) (the "second
column"); concat -> IN -> ReLU -> 1x1 conv 256 -> IN; plus x.

Discriminator: global (the whole image, six 5x5 stride-2 convs 64-512) and
local (the 128 box around the hole, five convs), each conv followed by
BatchNorm and LeakyReLU 0.2, flattened to a 512 FC; concat, LeakyReLU, FC to a
logit. It also returns the local branch's post-activation feature maps, for
discriminator feature matching.

Initialisation as the authors': conv weights N(0, 0.02), BatchNorm gamma N(1, 0.02).

`norm="batch"` (`--generator_norm=batch`) puts BatchNorm, initialised as the
discriminator's, wherever the generator has an instance norm: an ablation, not
the authors' network (see `_norm`).

Padding is PyTorch's: every convolution pads (k - 1) / 2 * dilation on every
side (`padding="symmetric"`), as the authors' `conv_block` does. TensorFlow's
"same" is the same at stride 1, but at stride 2 and an even size it pads
(0, 1) for a 3x3 and (1, 2) for a 5x5 kernel, which shifts the sampling
grid; `padding="tf_same"` is that older form, for runs trained with it.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from common import model_utils
from common.errors import UserError
from common.model_utils import normal_initializer

DMFB_VARIANTS = ("official", "paper")
GENERATOR_NORMS = ("instance", "batch")


def _conv(filters: int, kernel: int, name: str, strides: int = 1, dilation: int = 1,
          padding: str = "symmetric") -> layers.Layer:
    return model_utils.conv2d(filters, kernel, strides=strides, dilation=dilation,
                              padding=padding, kernel_initializer=normal_initializer(0.0, 0.02),
                              name=name)


def _instance_norm(name: str) -> layers.Layer:
    # PyTorch's InstanceNorm2d(affine=False): per-sample, per-channel, no parameters.
    return model_utils.InstanceNormalization(epsilon=1e-5, name=name)


def _norm(name: str, norm: str) -> layers.Layer:
    """The generator's normalisation: the authors' instance norm, or BatchNorm (an ablation).

    Instance normalisation without parameters takes each picture's colour level
    out of every feature map; the network has to carry it through in other ways
    before its fill matches the picture around a hole. BatchNorm, as in the
    discriminator, normalises with the batch's statistics in training and the
    running ones at inference, which leaves each picture's level in the features.
    """
    if norm == "batch":
        return model_utils.batch_norm(f"{name}_bn", gamma_initializer=normal_initializer(1.0, 0.02))
    return _instance_norm(f"{name}_in")


def _norm_relu(x, name: str, norm: str = "instance"):
    return layers.ReLU(name=f"{name}_relu")(_norm(name, norm)(x))


def dmfb_official(x, name: str, channels: int = 256, branch: int = 64,
                  norm: str = "instance"):
    """The dense multi-scale fusion block as the authors coded it."""
    t = _norm_relu(_conv(branch, 3, f"{name}_reduce")(x), f"{name}_reduce", norm)
    dilated = [_conv(branch, 3, f"{name}_d{rate}", dilation=rate)(t) for rate in (1, 2, 4, 8)]
    fused = [dilated[0]]
    for i, d in enumerate(dilated[1:], start=2):
        fused.append(layers.Add(name=f"{name}_k{i}")([fused[-1], d]))
    y = _norm_relu(layers.Concatenate(name=f"{name}_concat")(fused), f"{name}_concat", norm)
    y = _norm(f"{name}_fuse", norm)(_conv(channels, 3, f"{name}_fuse")(y))
    return layers.Add(name=f"{name}_residual")([x, y])


def dmfb_paper(x, name: str, channels: int = 256, branch: int = 64,
               norm: str = "instance"):
    """The block of the paper's figure: second-column convs and a 1x1 fusion."""
    t = _norm_relu(_conv(branch, 3, f"{name}_reduce")(x), f"{name}_reduce", norm)
    fused = [_conv(branch, 3, f"{name}_k1")(t)]
    for rate in (2, 4, 8):
        d = _conv(branch, 3, f"{name}_d{rate}", dilation=rate)(t)
        summed = layers.Add(name=f"{name}_sum{rate}")([d, fused[-1]])
        fused.append(_norm_relu(_conv(branch, 3, f"{name}_k{rate}")(summed), f"{name}_k{rate}",
                                 norm))
    y = _norm_relu(layers.Concatenate(name=f"{name}_concat")(fused), f"{name}_concat", norm)
    y = _norm(f"{name}_fuse", norm)(_conv(channels, 1, f"{name}_fuse")(y))
    return layers.Add(name=f"{name}_residual")([x, y])


def build_generator(num_blocks: int = 8, dmfb: str = "official", channels: int = 64,
                    padding: str = "symmetric", norm: str = "instance") -> keras.Model:
    """The DMFN generator: [N, H, W, 4] -> [N, H, W, 3] in [-1, 1] (H, W multiples of 4).

    `norm` is "instance" (the authors') or "batch" (see `_norm`).
    """
    if dmfb not in DMFB_VARIANTS:
        raise UserError(f"--dmfb must be one of {DMFB_VARIANTS}, got {dmfb!r}.")
    if norm not in GENERATOR_NORMS:
        raise UserError(f"--generator_norm must be one of {GENERATOR_NORMS}, got {norm!r}.")
    block = dmfb_official if dmfb == "official" else dmfb_paper
    c = channels
    inputs = keras.Input((None, None, 4), name="masked_image_and_mask")
    x = layers.ReLU(name="enc1_relu")(_conv(c, 5, "enc1")(inputs))
    x = _norm_relu(_conv(2 * c, 3, "enc2", strides=2, padding=padding)(x), "enc2", norm)
    x = _norm_relu(_conv(2 * c, 3, "enc3")(x), "enc3", norm)
    x = _norm_relu(_conv(4 * c, 3, "enc4", strides=2, padding=padding)(x), "enc4", norm)
    for i in range(num_blocks):
        x = block(x, f"dmfb{i + 1}", channels=4 * c, branch=c, norm=norm)
    x = _norm_relu(_conv(4 * c, 3, "dec1")(x), "dec1", norm)
    for i, filters in enumerate((2 * c, c), start=2):
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                   kernel_initializer=normal_initializer(0.0, 0.02),
                                   name=f"dec{i}_up")(x)
        x = _norm_relu(x, f"dec{i}_up", norm)
        x = _norm_relu(_conv(filters, 3, f"dec{i}")(x), f"dec{i}", norm)
    x = _conv(3, 3, "output")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=f"dmfn_generator_{dmfb}")


def _branch(inputs, channels: int, prefix: str, padding: str):
    """5x5 stride-2 convs + BN + LeakyReLU down to 4x4; returns (512-d features, conv maps)."""
    count = math.log2(inputs.shape[1] / 4)
    if inputs.shape[1] < 8 or count != int(count):
        raise ValueError(f"{prefix} input size must be 4 * 2^k, got {inputs.shape[1]}.")
    x, maps = inputs, []
    for i in range(int(count)):
        x = _conv(channels * min(2 ** i, 8), 5, f"{prefix}_conv{i + 1}", strides=2,
                  padding=padding)(x)
        x = model_utils.batch_norm(f"{prefix}_bn{i + 1}",
                                   gamma_initializer=normal_initializer(1.0, 0.02))(x)
        x = layers.LeakyReLU(0.2, name=f"{prefix}_lrelu{i + 1}")(x)
        maps.append(x)
    x = layers.Flatten(name=f"{prefix}_flatten")(x)
    return layers.Dense(512, name=f"{prefix}_fc")(x), maps


def build_discriminator(image_size: int = 256, local_size: int = 128, channels: int = 64,
                        padding: str = "symmetric") -> keras.Model:
    """Inputs [whole image, local patch] in [-1, 1] (GLCIC's order); outputs [logit,
    *local feature maps]. The local branch is built first and its features come
    first in the head, as in the reference (the layer order is the checkpoint's)."""
    global_input = keras.Input((image_size, image_size, 3), name="global_image")
    local_input = keras.Input((local_size, local_size, 3), name="local_patch")
    local_features, local_maps = _branch(local_input, channels, "local", padding)
    global_features, _ = _branch(global_input, channels, "global", padding)
    x = layers.Concatenate(name="concat")([local_features, global_features])
    x = layers.LeakyReLU(0.2, name="head_lrelu")(x)
    logit = layers.Dense(1, dtype="float32", name="logit")(x)
    local_maps = [layers.Activation("linear", dtype="float32", name=f"local_features{i + 1}")(m)
                  for i, m in enumerate(local_maps)]
    return keras.Model([global_input, local_input], [logit, *local_maps],
                       name="dmfn_discriminator")
