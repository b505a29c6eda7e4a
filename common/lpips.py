"""LPIPS v0.1 (Zhang et al., CVPR 2018) as the reference `lpips` package computes it.

distance(x, y) = sum over taps l of mean over (h, w) of
                 sum over channels c of w_lc * (f_l(x) / |f_l(x)| - f_l(y) / |f_l(y)|)^2

where f_l are the backbone's ReLU outputs at five taps (AlexNet: relu1-relu5;
VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), |.| is the norm over
channels (plus 1e-10), and w_l the release's non-negative 1x1 linear weights.
Inputs are scaled as the package's ScalingLayer does: from [-1, 1],
(x - shift) / scale with ImageNet-like constants. Convolutions and pools are
PyTorch's (zero padding on both sides, floor-mode pooling without padding),
so the backbone is torchvision's network, whose state dict it reads.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common import torch_files
from common.errors import UserError

# lpips.ScalingLayer.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10

# The backbones as torchvision's `features` Sequential: ("conv", index in
# `features`, stride, padding) is a convolution followed by its ReLU; "pool"
# a 3x3 (AlexNet) or 2x2 (VGG16) max pool; "tap" marks an LPIPS layer.
_ALEX = (("conv", 0, 4, 2), "tap", "pool", ("conv", 3, 1, 2), "tap", "pool", ("conv", 6, 1, 1),
         "tap", ("conv", 8, 1, 1), "tap", ("conv", 10, 1, 1), "tap")
_VGG16 = (("conv", 0, 1, 1), ("conv", 2, 1, 1), "tap", "pool",
          ("conv", 5, 1, 1), ("conv", 7, 1, 1), "tap", "pool",
          ("conv", 10, 1, 1), ("conv", 12, 1, 1), ("conv", 14, 1, 1), "tap", "pool",
          ("conv", 17, 1, 1), ("conv", 19, 1, 1), ("conv", 21, 1, 1), "tap", "pool",
          ("conv", 24, 1, 1), ("conv", 26, 1, 1), ("conv", 28, 1, 1), "tap")
PLANS = {"alex": _ALEX, "vgg": _VGG16}
POOLS = {"alex": (3, 2), "vgg": (2, 2)}  # (window, stride)
# The smallest image side each backbone's pools accept (AlexNet's second 3x3
# pool needs a 3x3 map; VGG16's fourth 2x2 pool a 2x2 one).
MIN_SIDE = {"alex": 31, "vgg": 16}

# Kernel shapes (out, in, kh, kw) of torchvision's networks, by features index.
_ALEX_SHAPES = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3),
                8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
_VGG_CHANNELS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128),
                 12: (256, 256), 14: (256, 256), 17: (512, 256), 19: (512, 512),
                 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}
KERNEL_SHAPES = {"alex": _ALEX_SHAPES,
                 "vgg": {i: (o, c, 3, 3) for i, (o, c) in _VGG_CHANNELS.items()}}


def tap_channels(net: str) -> list[int]:
    """Channels at each LPIPS tap (AlexNet 64, 192, 384, 256, 256)."""
    channels, last = [], None
    for op in PLANS[_check_net(net)]:
        if op == "tap":
            channels.append(last)
        elif op != "pool":
            last = KERNEL_SHAPES[net][op[1]][0]
    return channels


def _check_net(net: str) -> str:
    if net not in PLANS:
        raise UserError(f"--lpips_net must be one of {', '.join(PLANS)}, got {net!r}.")
    return net


def backbone_weights(net: str, state: dict, source: str = "the backbone weights") -> dict:
    """{features index: (HWIO kernel, bias)} from torchvision's AlexNet or VGG16 state
    dict (keys `features.N.weight` / `features.N.bias`; the classifier is not used)."""
    weights = {}
    for index, shape in KERNEL_SHAPES[_check_net(net)].items():
        kernel = torch_files.state_array(state, f"features.{index}.weight", shape, source)
        bias = torch_files.state_array(state, f"features.{index}.bias", shape[:1], source)
        weights[index] = (kernel.transpose(2, 3, 1, 0), bias)  # OIHW -> HWIO
    return weights


def linear_weights(net: str, state: dict, source: str = "the linear weights") -> list[np.ndarray]:
    """The five per-channel weights of the lpips release's `lin{k}.model.1.weight`."""
    return [torch_files.state_array(state, f"lin{k}.model.1.weight", (1, channels, 1, 1), source).reshape(-1)
            for k, channels in enumerate(tap_channels(net))]


class LPIPS(tf.Module):
    """LPIPS distance between image batches, built from the two state dicts.

    Call it with two [N, H, W, 3] batches in [-1, 1] (the suite's range; the
    package's own without `normalize=True`); it returns the [N] distances.
    Images need MIN_SIDE pixels a side (AlexNet 31, VGG16 16), as in the reference.
    """

    def __init__(self, net: str, backbone_state: dict, linear_state: dict,
                 backbone_source: str = "the backbone weights",
                 linear_source: str = "the linear weights"):
        super().__init__(name=f"lpips_{_check_net(net)}")
        self.net = net
        self._convs = {i: (tf.constant(k), tf.constant(b))
                       for i, (k, b) in backbone_weights(net, backbone_state,
                                                         backbone_source).items()}
        self._linear = [tf.constant(w) for w in linear_weights(net, linear_state, linear_source)]
        self._shift = tf.constant(SHIFT, tf.float32)
        self._scale = tf.constant(SCALE, tf.float32)

    def features(self, images: tf.Tensor) -> list[tf.Tensor]:
        """The five tap activations of images in [-1, 1] (after the scaling layer)."""
        x = (tf.cast(images, tf.float32) - self._shift) / self._scale
        window, stride = POOLS[self.net]
        taps = []
        for op in PLANS[self.net]:
            if op == "tap":
                taps.append(x)
            elif op == "pool":
                x = tf.nn.max_pool2d(x, window, stride, "VALID")
            else:
                _, index, conv_stride, pad = op
                kernel, bias = self._convs[index]
                x = tf.nn.conv2d(x, kernel, conv_stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
                x = tf.nn.relu(x + bias)
        return taps

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)] * 2)
    def __call__(self, images_a: tf.Tensor, images_b: tf.Tensor) -> tf.Tensor:
        total = 0.0
        for f_a, f_b, weight in zip(self.features(images_a), self.features(images_b),
                                    self._linear):
            unit_a = f_a / (tf.sqrt(tf.reduce_sum(f_a ** 2, -1, keepdims=True)) + NORM_EPS)
            unit_b = f_b / (tf.sqrt(tf.reduce_sum(f_b ** 2, -1, keepdims=True)) + NORM_EPS)
            weighted = tf.reduce_sum((unit_a - unit_b) ** 2 * weight, -1)
            total += tf.reduce_mean(weighted, axis=[1, 2])
        return total
