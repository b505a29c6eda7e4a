"""Small helpers about Keras models shared by the papers."""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers
from keras import ops

from common.errors import UserError


def count_trainable_params(*models: keras.Model) -> int:
    """Total number of trainable parameters of the given models."""
    return sum(math.prod(w.shape) for model in models for w in model.trainable_weights)


def parameter_counts(generator: keras.Model,
                     discriminator: keras.Model | None = None) -> dict[str, int]:
    """What `train.py --dry_run` prints: trainable parameters (0 without a discriminator)."""
    return {"generator_params": count_trainable_params(generator),
            "discriminator_params": (count_trainable_params(discriminator)
                                     if discriminator is not None else 0)}


def normal_initializer(mean: float = 0.0, stddev: float = 0.02) -> keras.initializers.Initializer:
    """A *fresh* N(mean, stddev) initializer; call once per layer.

    An unseeded Keras 3 initializer fixes its seed when it is constructed. One
    instance shared by several layers would give every layer of the same shape
    the same initial weights, and one built at import time would ignore
    `keras.utils.set_random_seed`. A new instance per layer, made after the
    seed is set, avoids both.
    """
    return keras.initializers.RandomNormal(mean=mean, stddev=stddev)


PADDINGS = ("symmetric", "tf_same")


def check_padding(padding: str) -> str:
    """`padding` if it is one of PADDINGS, else a ValueError naming --conv_padding."""
    if padding not in PADDINGS:
        raise UserError(f"--conv_padding must be one of {PADDINGS}, got {padding!r}.")
    return padding


@keras.saving.register_keras_serializable(package="inpainting")
class SymmetricConv2D(layers.Conv2D):
    """A Conv2D that zero-pads `dilation * (kernel - 1) // 2` pixels on every side.

    This is Torch's and PyTorch's `padding=p`. TensorFlow's "same" pads the
    same total, but at stride 2 and an even input size it puts the odd pixel
    at the bottom/right: (0, 1) for a 3x3 kernel, (1, 2) for a 5x5. The
    output has the same shape, but its sampling grid sits one input pixel
    away from the reference's, so weights trained in one framework compute a
    different function in the other.

    The input is padded by `tf.pad` and convolved with "VALID" padding rather
    than given to `tf.nn.conv2d` as explicit padding: TensorFlow's CPU kernels
    (oneDNN) compute the two alike forward, but the gradients of explicitly
    padded convolutions fall back to slow kernels, 1.3-1.5 times slower in
    float32 and about 100 times slower in bfloat16 (TensorFlow 2.21; see
    docs/performance.md). The padded copy costs far less than that.
    """

    def __init__(self, filters: int, kernel_size: int, **kwargs):
        kwargs.pop("padding", None)  # always explicit; "valid" in get_config()
        super().__init__(filters, kernel_size, padding="valid", **kwargs)
        kernel, dilation = self.kernel_size[0], self.dilation_rate[0]
        if self.kernel_size[1] != kernel or self.dilation_rate[1] != dilation or kernel % 2 == 0:
            raise ValueError(f"SymmetricConv2D needs a square, odd kernel and one dilation rate, "
                             f"got kernel {self.kernel_size}, dilation {self.dilation_rate}.")
        self.symmetric_pad = dilation * (kernel - 1) // 2

    def convolution_op(self, inputs, kernel):
        p = self.symmetric_pad
        padded = tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]])
        return tf.nn.conv2d(padded, kernel, strides=list(self.strides), padding="VALID",
                            dilations=list(self.dilation_rate))

    def compute_output_shape(self, input_shape):
        n, height, width, channels = input_shape
        padded = [None if s is None else s + 2 * self.symmetric_pad for s in (height, width)]
        return super().compute_output_shape((n, *padded, channels))


def conv2d(filters: int, kernel: int, *, name: str, strides: int = 1, dilation: int = 1,
           padding: str = "symmetric", **kwargs) -> layers.Conv2D:
    """A convolution padded as a Torch/PyTorch reference pads it (`padding="symmetric"`).

    At stride 1 TensorFlow's "same" already pads an odd kernel symmetrically,
    so the ordinary layer is used; at stride 2 a `SymmetricConv2D`.
    `padding="tf_same"` gives TensorFlow's rule everywhere (how this suite's
    networks were built before they matched their references; kept so that
    runs trained then still load and compute what they were trained to).
    """
    if check_padding(padding) == "tf_same" or strides == 1:
        return layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation,
                             padding="same", name=name, **kwargs)
    return SymmetricConv2D(filters, kernel, strides=strides, dilation_rate=dilation, name=name,
                           **kwargs)


@keras.saving.register_keras_serializable(package="inpainting")
class TorchBatchNormalization(layers.BatchNormalization):
    """BatchNorm whose moving variance follows Torch7 and PyTorch: the *unbiased* batch variance.

    Both frameworks normalise a training batch with its biased variance (sum
    of squares / n) but track `running_var` with the unbiased one (/ (n - 1));
    Keras tracks the biased one. With n elements per channel (batch x height x
    width, over all replicas when synchronised) the tracked variance is
    therefore n / (n - 1) times larger here than Keras' own, which matters at
    a 1x1 bottleneck (n = batch size). The variables are Keras' own, so
    checkpoints of either layer load into the other.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        # Keras' own moments (all-reduced over replicas when synchronised), not
        # `shifted_moments`: one device and several replicas must round the same
        # way, or GLCIC's first ADADELTA steps drift apart by a percent.
        mean, variance = self._moments(x, None)
        count = ops.cast(ops.size(x) // ops.shape(x)[self.axis], x.dtype)
        replica_context = tf.distribute.get_replica_context()
        if self.synchronized and replica_context is not None:
            count = count * replica_context.num_replicas_in_sync
        unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + unbiased * (1.0 - momentum))
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(x, mean, variance, axis=self.axis, offset=beta,
                                          scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


def batch_norm(name: str, gamma_initializer: keras.initializers.Initializer | str = "ones"
               ) -> keras.layers.BatchNormalization:
    """Torch-default BatchNorm (momentum 0.1, i.e. Keras 0.9; eps 1e-5; unbiased running variance).

    Built inside a strategy's scope with several replicas (`--strategy=mirrored`
    or `multi_worker`), the batch statistics are synchronised across replicas,
    so they are those of the global batch, as when the papers trained on one
    GPU. On one device the ordinary (cheaper, more precise) moments are used.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return TorchBatchNormalization(momentum=0.9, epsilon=1e-5,
                                   gamma_initializer=gamma_initializer,
                                   synchronized=replicas > 1, name=name)


def shifted_moments(x: tf.Tensor, axes: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and (biased) variance over `axes`, computed around one sample of each channel.

    float32 sums of a map whose mean lies many standard deviations from zero
    lose the mean to rounding (about 6e-5 standard deviations at 20 sigma on a
    128x128 map with `tf.nn.moments`, which Keras' normalisation layers use).
    Subtracting one value of each channel first (a constant, so no gradient
    flows through it) brings the sums close to zero: 14 times tighter at the
    same cost.
    """
    index = tuple(slice(0, 1) if axis in axes else slice(None) for axis in range(len(x.shape)))
    shift = tf.stop_gradient(x[index])
    mean, variance = tf.nn.moments(x - shift, axes=axes, keepdims=True)
    return mean + shift, variance


@keras.saving.register_keras_serializable(package="inpainting")
class InstanceNormalization(layers.Layer):
    """PyTorch's InstanceNorm2d(affine=False): each map of each image to zero mean, unit variance.

    Keras' `GroupNormalization(groups=-1, center=False, scale=False)` computes
    the same function with plain float32 moments; this layer uses
    `shifted_moments`, which keeps the statistics close to PyTorch's. No
    weights, so checkpoints do not depend on which of the two was used.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = shifted_moments(x, [1, 2])
        return ops.cast((x - mean) * ops.rsqrt(variance + self.epsilon), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
