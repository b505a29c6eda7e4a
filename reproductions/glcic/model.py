"""GLCIC networks: the completion network and the global + local context discriminators.

Completion network (the paper's Table 1; identical in the public ports). Every
layer but the last is conv -> BatchNorm -> ReLU:

   1 conv 5x5 64          7 dilated 3x3 256, rate 2     13 deconv 4x4 /2 128
   2 conv 3x3 128, /2     8 dilated 3x3 256, rate 4     14 conv 3x3 128
   3 conv 3x3 128         9 dilated 3x3 256, rate 8     15 deconv 4x4 /2 64
   4 conv 3x3 256, /2    10 dilated 3x3 256, rate 16    16 conv 3x3 32
   5 conv 3x3 256        11 conv 3x3 256                17 conv 3x3 3, sigmoid
   6 conv 3x3 256        12 conv 3x3 256

Input: 4 channels (RGB in [0, 1] minus the dataset's mean pixel, hole set to
0, plus the mask); fully convolutional for sides that are multiples of 4.

Discriminators: 5x5 stride-2 convs (64, 128, 256, 512, 512[, 512]) with
BatchNorm + ReLU down to 4x4x512, then a fully connected layer to 1024: six
convs for the 256x256 global image, five for the 128x128 local patch. The two
1024-vectors are concatenated and mapped to one logit. The paper's text has
nothing between each branch's FC-1024 and the concatenation (`fc_activation`
"none"); the PyTorch port applies a ReLU there ("relu"), and a public
reconstruction of the authors' discriminator BatchNorm + ReLU ("bn_relu").

Padding is Torch's: every stride-2 convolution pads (k - 1) / 2 on every side
(`padding="symmetric"`), as the authors' released model does
(SpatialConvolution(..., 3, 3, 2, 2, 1, 1)); TensorFlow's "same" would pad
(0, 1) and (1, 2) at even sizes and shift the sampling grid by one pixel per
stride-2 layer. `padding="tf_same"` is that older form, for runs trained
with it.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from common import model_utils
from common.errors import UserError

# (kind, filter multiple of the base width, kernel, stride, dilation) of layers 1-16.
COMPLETION_LAYERS = (
    ("conv", 1, 5, 1, 1),
    ("conv", 2, 3, 2, 1),
    ("conv", 2, 3, 1, 1),
    ("conv", 4, 3, 2, 1),
    ("conv", 4, 3, 1, 1),
    ("conv", 4, 3, 1, 1),
    ("conv", 4, 3, 1, 2),
    ("conv", 4, 3, 1, 4),
    ("conv", 4, 3, 1, 8),
    ("conv", 4, 3, 1, 16),
    ("conv", 4, 3, 1, 1),
    ("conv", 4, 3, 1, 1),
    ("deconv", 2, 4, 2, 1),
    ("conv", 2, 3, 1, 1),
    ("deconv", 1, 4, 2, 1),
    ("conv", 0.5, 3, 1, 1),
)


def _batch_norm(name: str) -> layers.Layer:
    # Torch's defaults, as in the official code's framework.
    return model_utils.batch_norm(name)


FC_ACTIVATIONS = ("none", "relu", "bn_relu")


def build_completion_network(channels: int = 64, padding: str = "symmetric") -> keras.Model:
    """The 17-layer completion network; input [N, H, W, 4], output [N, H, W, 3] in [0, 1]."""
    inputs = keras.Input((None, None, 4), name="centered_image_and_mask")
    x = inputs
    for i, (kind, multiple, kernel, stride, dilation) in enumerate(COMPLETION_LAYERS, start=1):
        filters = int(channels * multiple)
        if kind == "conv":
            x = model_utils.conv2d(filters, kernel, strides=stride, dilation=dilation,
                                   padding=padding, name=f"conv{i}")(x)
        else:
            x = layers.Conv2DTranspose(filters, kernel, strides=stride, padding="same",
                                       name=f"deconv{i}")(x)
        x = _batch_norm(f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.Conv2D(3, 3, padding="same", name="conv17")(x)
    outputs = layers.Activation("sigmoid", dtype="float32", name="sigmoid")(x)
    return keras.Model(inputs, outputs, name="glcic_completion")


def receptive_field(model: keras.Model) -> int:
    """Side of the input region that one output pixel can see (worst-case alignment).

    Walks back from one output pixel: a conv with kernel k (dilated to
    k_eff) and stride s widens a region of R pixels to (R - 1) * s + k_eff; a
    transposed conv with kernel k and stride s reads floor((R + k - 2) / s) + 1
    inputs for R outputs. For the paper's network this gives 303 px (95 without
    dilation); the paper reports 307 (and 99), counting the transposed convs
    slightly differently.
    """
    size = 1
    for layer in reversed(model.layers):
        if isinstance(layer, layers.Conv2DTranspose):
            size = (size + layer.kernel_size[0] - 2) // layer.strides[0] + 1
        elif isinstance(layer, layers.Conv2D):
            effective = (layer.kernel_size[0] - 1) * layer.dilation_rate[0] + 1
            size = (size - 1) * layer.strides[0] + effective
    return size


def _num_downsamplings(size: int, name: str) -> int:
    count = math.log2(size / 4)
    if size < 8 or count != int(count):
        raise ValueError(f"{name} must be 4 * 2^k (e.g. 256 or 128), got {size}.")
    return int(count)


def _context_branch(inputs, channels: int, prefix: str, padding: str,
                    fc_activation: str) -> keras.KerasTensor:
    """5x5 stride-2 convs to 4x4x(8 * channels), flatten, fully connected to 1024."""
    x = inputs
    for i in range(_num_downsamplings(inputs.shape[1], f"{prefix} input size")):
        filters = channels * min(2 ** i, 8)
        x = model_utils.conv2d(filters, 5, strides=2, padding=padding,
                               name=f"{prefix}_conv{i + 1}")(x)
        x = _batch_norm(f"{prefix}_bn{i + 1}")(x)
        x = layers.ReLU(name=f"{prefix}_relu{i + 1}")(x)
    x = layers.Flatten(name=f"{prefix}_flatten")(x)
    x = layers.Dense(1024, name=f"{prefix}_fc")(x)
    if fc_activation == "bn_relu":
        x = _batch_norm(f"{prefix}_fc_bn")(x)
    if fc_activation in ("relu", "bn_relu"):
        x = layers.ReLU(name=f"{prefix}_fc_relu")(x)
    return x


def build_discriminator(image_size: int = 256, local_size: int = 128, channels: int = 64,
                        padding: str = "symmetric", fc_activation: str = "none") -> keras.Model:
    """Global and local context discriminators joined by a final layer.

    Inputs: the whole image [N, S, S, 3] and the local patch [N, L, L, 3], in
    [-1, 1]. Output: one logit per image (float32). `fc_activation`: what
    follows each branch's FC-1024 (see the module docstring).
    """
    if fc_activation not in FC_ACTIVATIONS:
        raise UserError(f"--d_fc_activation must be one of {FC_ACTIVATIONS}, got "
                         f"{fc_activation!r}.")
    global_input = keras.Input((image_size, image_size, 3), name="global_image")
    local_input = keras.Input((local_size, local_size, 3), name="local_patch")
    features = layers.Concatenate(name="concat")([
        _context_branch(global_input, channels, "global", padding, fc_activation),
        _context_branch(local_input, channels, "local", padding, fc_activation)])
    logit = layers.Dense(1, dtype="float32", name="logit")(features)
    return keras.Model([global_input, local_input], logit, name="glcic_discriminator")
