"""A frozen VGG16/VGG19 feature extractor for perceptual and feature-matching losses.

Structural Inpainting uses VGG16 conv1_1, conv2_1 and conv3_1; DMFN uses VGG19
relu1_1 ... relu5_1. Both name taps the Caffe way. Keras convolutions have the
ReLU built in, so `convB_K` and `reluB_K` both mean the (post-ReLU) output of
Keras layer `block{B}_conv{K}`.

The extractor is never trained and is never part of a checkpoint. Gradients
flow through it to the input images but never to its weights. Its VGG
model is kept out of Keras/TF attribute tracking, so an enclosing model that
stores a `FeatureExtractor` as an attribute neither lists its weights (as
trainable or non-trainable) nor saves them, and toggling the enclosing
model's `trainable` flag (as GAN code often does) cannot unfreeze it. The
weights always come from the `weights` argument when it is rebuilt.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Sequence

import keras
import tensorflow as tf
from keras import ops

from common.errors import UserError

ARCHITECTURES = ("vgg16", "vgg19")

# Convolutions per block; VGG19 has a fourth conv in blocks 3-5.
_CONVS_PER_BLOCK = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}

# Caffe-mode ImageNet mean, in BGR order, on the 0-255 scale: what the Keras
# (Caffe-converted) VGG weights were trained with.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

_TAP_NAME = re.compile(r"^(conv|relu)(\d)_(\d)$")


def valid_layer_names(arch: str) -> tuple[str, ...]:
    """All tap names accepted for `arch`, shallowest first (conv and relu spellings)."""
    _check_arch(arch)
    names = []
    for block, convs in enumerate(_CONVS_PER_BLOCK[arch], start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return tuple(names)


def keras_layer_name(name: str, arch: str = "vgg16") -> str:
    """Maps a paper's tap name (`conv3_1` or `relu3_1`) to the Keras layer (`block3_conv1`)."""
    if name not in valid_layer_names(arch):
        raise UserError(
            f"Unknown {arch} layer {name!r}. Valid names: {', '.join(valid_layer_names(arch))}."
        )
    _, block, conv = _TAP_NAME.match(name).groups()
    return f"block{block}_conv{conv}"


def caffe_preprocess(images: tf.Tensor) -> tf.Tensor:
    """Maps RGB images in [-1, 1] to the Caffe input of the Keras VGG weights (float32).

    (x + 1) * 127.5 gives RGB in [0, 255]; then RGB -> BGR and subtraction of
    the ImageNet BGR mean, i.e. `keras.applications.vgg16.preprocess_input`.
    """
    images = ops.cast(images, "float32")
    bgr = ops.flip((images + 1.0) * 127.5, axis=-1)
    return bgr - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype="float32")


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}.")


def _check_layers(layers: Sequence[str], arch: str) -> tuple[str, ...]:
    """Validates tap names: known, unique, and ordered from shallow to deep."""
    if isinstance(layers, str) or not layers:
        raise UserError(f"layers must be a non-empty sequence of names such as ('conv1_1',), got {layers!r}.")
    layers = tuple(layers)
    keras_names = [keras_layer_name(name, arch) for name in layers]
    # conv/relu spellings of one tap share a depth: compare by the conv name.
    conv_names = valid_layer_names(arch)[::2]
    depths = [conv_names.index(name.replace("relu", "conv")) for name in layers]
    if any(deeper <= shallower for shallower, deeper in zip(depths, depths[1:])):
        raise UserError(
            f"layers must be unique and ordered from shallow to deep (convB_K and reluB_K are the "
            f"same tap), got {layers!r}."
        )
    return layers, keras_names


def without_weights(config: object) -> object:
    """`config` (a paper's frozen dataclass) with `vgg_weights=None` if it has that field.

    The VGG serves only the training losses: counting parameters or inpainting
    need not load, let alone download, its weights.
    """
    if not hasattr(config, "vgg_weights"):
        return config
    return dataclasses.replace(config, vgg_weights=None)


def random_weights_caveat(arch: str, weights) -> str:
    """The warning a run with random VGG weights (`weights=None`) carries; "" otherwise."""
    if weights is not None:
        return ""
    return (f"random {arch.upper()} weights (--vgg_weights=none): the feature losses are not "
            "the paper's")


def _build_vgg(arch: str, weights: str | None) -> keras.Model:
    """The notop Keras VGG with `weights` loaded; see FeatureExtractor for `weights`."""
    if weights not in ("imagenet", None):
        if not isinstance(weights, (str, os.PathLike)):
            raise UserError(f"weights must be 'imagenet', None or a file path, got {weights!r}.")
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"VGG weights file {weights!r} not found. Expected a Keras `.weights.h5` file of the "
                f"{arch.upper()} convolutional base without the classifier (include_top=False)."
            )
    application = keras.applications.VGG16 if arch == "vgg16" else keras.applications.VGG19
    try:
        return application(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as error:  # Keras raises a bare Exception when a download fails.
        if weights != "imagenet":
            raise UserError(f"VGG weights file {weights!r} does not fit the {arch.upper()} "
                            f"convolutional base (include_top=False): {error}") from error
        raise UserError(
            f"Could not get the ImageNet {arch.upper()} weights from Keras ({error}). Without "
            f"internet access, pass --vgg_weights=PATH (weights=PATH in Python), a local notop "
            "`.weights.h5` file, or --vgg_weights=none for random weights (the feature losses "
            "are then not the paper's)."
        ) from error


class FeatureExtractor(keras.layers.Layer):
    """Frozen VGG feature taps for images in [-1, 1].

    Args:
      arch: "vgg16" or "vgg19".
      layers: tap names ordered from shallow to deep, e.g. ("conv1_1",
        "conv2_1", "conv3_1"); `convB_K` and `reluB_K` both mean the post-ReLU
        output of Keras layer `block{B}_conv{K}`.
      weights: "imagenet" (Keras downloads the Caffe-converted weights), a
        path to a local notop `.weights.h5` file, or None (random; tests only).

    Calling it on float NHWC RGB images in [-1, 1] returns a dict
    {tap name: float32 features}. Only the layers up to the deepest tap are
    kept. Under mixed precision the VGG runs in its compute dtype (inputs are
    cast to it after float32 preprocessing); outputs are float32.

    Do not save it in checkpoints: its weights are fixed and reloaded from
    `weights`. The VGG model is deliberately hidden from attribute tracking
    (see the module docstring), so keeping an extractor as an attribute of a
    checkpointed model or loss object is safe. `vgg_model` exposes it.
    """

    def __init__(self, arch="vgg16", layers=("conv1_1", "conv2_1", "conv3_1"), weights="imagenet", **kwargs):
        _check_arch(arch)
        tap_names, keras_names = _check_layers(layers, arch)
        # autocast=False: preprocessing must see float32 (0-255 values and the
        # mean subtraction); the cast to the VGG's dtype happens afterwards.
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.arch = arch
        self.layer_names = tap_names
        self.weights_source = weights

        full_vgg = _build_vgg(arch, weights)
        outputs = [full_vgg.get_layer(name).output for name in keras_names]
        # A functional model on intermediate outputs keeps only the layers up
        # to the deepest tap; the rest of the VGG is dropped with `full_vgg`.
        truncated = keras.Model(full_vgg.input, outputs, name=f"{arch}_features")
        truncated.trainable = False
        # object.__setattr__ bypasses Keras and TF tracking: no enclosing model
        # will list, train or checkpoint these weights.
        object.__setattr__(self, "_vgg", truncated)
        object.__setattr__(
            self, "_channels", {name: full_vgg.get_layer(k).filters for name, k in zip(tap_names, keras_names)}
        )
        self.built = True

    @property
    def trainable(self):
        return False

    @trainable.setter
    def trainable(self, value):
        # Ignored on purpose: a parent's `model.trainable = True` propagates to
        # sublayers, and must not unfreeze the VGG.
        self._trainable = False

    @property
    def vgg_model(self):
        """The truncated Keras VGG (frozen, not tracked by enclosing models)."""
        return self._vgg

    def channels(self, name):
        """Number of feature channels of tap `name` (e.g. 64 for conv1_1)."""
        if name not in self._channels:
            raise ValueError(f"{name!r} is not one of the requested layers {self.layer_names}.")
        return self._channels[name]

    def call(self, images):
        inputs = ops.cast(caffe_preprocess(images), self._vgg.compute_dtype)
        # The weights enter as constants (stop_gradient) through the public
        # stateless API: Keras 3 keeps frozen weights as TF-trainable variables,
        # which a GradientTape would otherwise watch and differentiate.
        frozen_weights = [ops.stop_gradient(w) for w in self._vgg.non_trainable_variables]
        features, _ = self._vgg.stateless_call([], frozen_weights, inputs, training=False)
        if not isinstance(features, (list, tuple)):  # a one-tap model returns a bare tensor
            features = [features]
        return {name: ops.cast(f, "float32") for name, f in zip(self.layer_names, features)}

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        weights = self.weights_source
        config.update(arch=self.arch, layers=list(self.layer_names), weights=os.fspath(weights) if weights else weights)
        return config
