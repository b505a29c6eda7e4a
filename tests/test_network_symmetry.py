"""Padding and normalisation statistics as the papers' references compute them.

Torch and PyTorch pad a stride-2 convolution by p = (k - 1) / 2 on every side,
so output pixel i is centred on input pixel 2i whatever the input's size: the
sampling grid is anchored at the top-left corner. TensorFlow's "same" pads
(0, 1) or (1, 2) at even sizes and (1, 1) or (2, 2) at odd ones, so its grid
moves by one pixel when the size changes parity. The anchoring test below
needs no reference code: in a network that maps zero to zero (biases and
BatchNorm shifts set to 0), content in the top-left corner must give the same
output whether the canvas is 192 or 193 pixels wide, since the extra zero row
and column are then indistinguishable from padding. The older networks, with
TensorFlow's rule, fail it by far more than float32 rounding.

A mirror test (mirror the kernels and the input, expect the mirrored output)
cannot separate the two rules at even sizes: mirroring turns the grid
{0, 2, ..., N - 2} into {1, 3, ..., N - 1}, i.e. Torch's padding into
TensorFlow's and back, so neither passes it and both pass it at odd sizes.
`test_mirroring_maps_one_padding_onto_the_other` checks exactly that.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

from common import model_utils
from reproductions.context_encoder import model as ce_model
from reproductions.dmfn import model as dmfn_model
from reproductions.glcic import model as glcic_model
from reproductions.structural_inpainting import model as si_model

CANVAS, CORNER = 192, 32  # content in the top-left 32x32; far from the bottom-right edges


def _zero_preserving_weights(model, seed=0):
    """Random kernels and BatchNorm scales; every bias, shift and moving mean 0."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape, name = tuple(weight.shape), weight.path.split("/")[-1]
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1])) if len(shape) != 4 else int(np.prod(shape[:3]))
            weight.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
        elif name in ("gamma", "moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            weight.assign(np.zeros(shape, np.float32))


def _corner_input(size, channels, seed=1):
    x = np.zeros((1, size, size, channels), np.float32)
    x[:, :CORNER, :CORNER] = np.random.default_rng(seed).uniform(-1, 1, (CORNER, CORNER,
                                                                         channels))
    return x


def _anchoring_error(network, channels):
    """Relative change of the output over the original canvas when it grows by one pixel."""
    _zero_preserving_weights(network)
    small = np.asarray(network(_corner_input(CANVAS, channels), training=False))
    large = np.asarray(network(_corner_input(CANVAS + 1, channels), training=False))
    rows, cols = small.shape[1:3]
    return np.abs(large[:, :rows, :cols] - small).max() / np.abs(small).max()


def _trunk(model, prefix, channels):
    """The convolutional layers of a discriminator branch, on an input of any size."""
    inputs = x = keras.Input((None, None, channels))
    kinds = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.ReLU,
             keras.layers.LeakyReLU)
    for layer in model.layers:
        if layer.name.startswith(prefix) and isinstance(layer, kinds):
            x = layer(x)
    return keras.Model(inputs, x)


def _layers_before(model, name, channels):
    """The layers of a sequential model up to (without) `name`, on an input of any size."""
    inputs = x = keras.Input((None, None, channels))
    for layer in model.layers[1:]:
        if layer.name == name:
            break
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.fixture
def dmfn_without_instance_norm(monkeypatch):
    # Instance normalisation averages over the whole map, so a bigger canvas
    # changes it whatever the padding; it has no weights and no say in where
    # the convolutions sample. Replaced by the identity for the padding test.
    monkeypatch.setattr(dmfn_model, "_instance_norm", lambda name: keras.layers.Identity(
        name=name))


def _networks(padding):
    """(name, fully convolutional network, input channels) of the Torch/PyTorch papers."""
    glcic_d = glcic_model.build_discriminator(64, 32, 4, padding=padding)
    dmfn_d = dmfn_model.build_discriminator(64, 32, 4, padding=padding)
    return [
        ("glcic completion", glcic_model.build_completion_network(4, padding=padding), 4),
        ("glcic global discriminator", _trunk(glcic_d, "global_", 3), 3),
        ("glcic local discriminator", _trunk(glcic_d, "local_", 3), 3),
        ("dmfn generator", dmfn_model.build_generator(1, "official", 4, padding=padding), 4),
        ("dmfn generator, paper block", dmfn_model.build_generator(1, "paper", 4,
                                                                   padding=padding), 4),
        ("dmfn global discriminator", _trunk(dmfn_d, "global_", 3), 3),
        ("dmfn local discriminator", _trunk(dmfn_d, "local_", 3), 3),
    ]


def test_torch_papers_networks_sample_on_the_references_grid(dmfn_without_instance_norm):
    for name, network, channels in _networks("symmetric"):
        error = _anchoring_error(network, channels)
        assert error < 1e-5, f"{name}: output moved by {error:.2g} (relative)"


def test_the_anchoring_test_catches_tensorflow_same_padding(dmfn_without_instance_norm):
    for name, network, channels in _networks("tf_same"):
        assert _anchoring_error(network, channels) > 1e-2, name


@pytest.mark.parametrize("variant", ce_model.VARIANTS)
def test_context_encoder_encoders_sample_on_torchs_grid(variant):
    # Torch's k4 s2 p1 is TensorFlow's "same" with one pixel at the top/left at
    # every size, so the official networks need no change.
    generator = ce_model.build_generator(variant, ngf=4, nef=4, bottleneck=8)
    discriminator = ce_model.build_discriminator(variant, ndf=4)
    assert _anchoring_error(_layers_before(generator, "bottleneck", 3), 3) < 1e-5
    assert _anchoring_error(_layers_before(discriminator, "logit", 3), 3) < 1e-5


def test_structural_inpainting_keeps_the_tensorflow_ports_padding():
    # Its reference is TensorFlow, so its layers keep "same": 4x4 stride-2
    # encoder convs (one pixel at the top/left at every size) and 4x4 stride-1
    # decoder convs padding (1, 2), exactly as the port's "SAME".
    generator = si_model.build_generator(width=4, bottleneck=8)
    convs = [l for l in generator.layers if isinstance(l, keras.layers.Conv2D)]
    assert all(type(l) is keras.layers.Conv2D and l.padding in ("same", "valid") for l in convs)
    assert _anchoring_error(_layers_before(generator, "bottleneck", 3), 3) < 1e-5
    discriminator = si_model.build_discriminator(width=4)
    assert _anchoring_error(_layers_before(discriminator, "flatten", 3), 3) < 1e-5


def test_mirroring_maps_one_padding_onto_the_other():
    # With mirrored kernels, the Torch-padded network on a mirrored input gives
    # the mirror of the TensorFlow-padded network's output, at even sizes.
    torch_padded = glcic_model.build_completion_network(4, padding="symmetric")
    tf_padded = glcic_model.build_completion_network(4, padding="tf_same")
    x = np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 4)).astype(np.float32)
    _zero_preserving_weights(tf_padded)
    # Pre-sigmoid outputs: the sigmoid of a random deep network saturates.
    logits = lambda net, inputs: np.asarray(keras.Model(net.input, net.get_layer(
        "conv17").output)(inputs, training=False))
    expected = np.flip(logits(tf_padded, x), axis=(1, 2))
    for source, target in zip(tf_padded.weights, torch_padded.weights):
        value = source.numpy()
        target.assign(np.flip(value, axis=(0, 1)) if value.ndim == 4 else value)
    mirrored = logits(torch_padded, np.flip(x, axis=(1, 2)))
    assert np.abs(mirrored - expected).max() < 1e-4 * np.abs(expected).max()
    assert np.abs(logits(torch_padded, x) - logits(tf_padded, x)).max() > 1e-2 * np.abs(
        expected).max()


def test_symmetric_conv_matches_a_numpy_convolution_with_torch_padding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 8, 6, 2)).astype(np.float32)
    layer = model_utils.conv2d(3, 5, strides=2, name="c")
    assert isinstance(layer, model_utils.SymmetricConv2D)
    y = layer(x).numpy()
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    padded = np.pad(x[0], ((2, 2), (2, 2), (0, 0)))  # PyTorch padding=2 on every side
    expected = np.array([[np.einsum("hwi,hwio->o", padded[2 * r:2 * r + 5, 2 * c:2 * c + 5],
                                    kernel) + bias for c in range(3)] for r in range(4)])
    assert y.shape == (1, 4, 3, 3)
    np.testing.assert_allclose(y[0], expected, rtol=1e-5, atol=1e-5)
    # At stride 1 TensorFlow's own "same" is already symmetric, and used.
    assert type(model_utils.conv2d(3, 3, name="s1")) is keras.layers.Conv2D
    with pytest.raises(ValueError, match="conv_padding"):
        model_utils.conv2d(3, 3, strides=2, name="bad", padding="reflect")


def test_symmetric_conv_gradients_use_no_explicit_padding():
    # Explicitly padded convolutions have slow gradient kernels on TensorFlow's
    # CPU (about 100 times slower in bfloat16), so the layer pads, then
    # convolves "VALID": same values and gradients, no EXPLICIT conv in the graph.
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 10, 8, 3)).astype(np.float32))
    layer = model_utils.conv2d(4, 3, strides=2, dilation=1, name="c")
    layer.build(x.shape)

    @tf.function
    def value_and_gradients(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.square(layer(inputs)))
        return loss, tape.gradient(loss, [inputs, layer.kernel])

    loss, (input_gradient, kernel_gradient) = value_and_gradients(x)
    with tf.GradientTape() as tape:  # the explicitly padded reference, run eagerly
        tape.watch(x)
        reference = tf.reduce_sum(tf.square(tf.nn.conv2d(
            x, layer.kernel, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]) + layer.bias))
    expected_input, expected_kernel = tape.gradient(reference, [x, layer.kernel])
    np.testing.assert_allclose(loss.numpy(), reference.numpy(), rtol=1e-5)
    np.testing.assert_allclose(input_gradient, expected_input, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(kernel_gradient, expected_kernel, rtol=1e-4, atol=1e-4)

    graph = value_and_gradients.get_concrete_function(x).graph
    convolutions = [op for op in graph.get_operations()
                    if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")]
    assert {op.type for op in convolutions} == {"Conv2D", "Conv2DBackpropInput",
                                                "Conv2DBackpropFilter"}
    assert all(op.get_attr("padding") == b"VALID" for op in convolutions)


def test_batch_norm_tracks_the_unbiased_variance_as_torch_does():
    layer = model_utils.batch_norm("bn")
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(2, 2, 1, 1)  # n = 4 per channel
    y = layer(x, training=True).numpy()
    # Normalised with the biased variance 1.25; tracked with the unbiased 5/3:
    # moving = 0.9 * initial + 0.1 * batch value (Torch momentum 0.1).
    np.testing.assert_allclose(y.ravel(), (np.arange(1, 5) - 2.5) / np.sqrt(1.25 + 1e-5),
                               rtol=1e-5)
    assert layer.moving_mean.numpy()[0] == pytest.approx(0.9 * 0.0 + 0.1 * 2.5)
    assert layer.moving_variance.numpy()[0] == pytest.approx(0.9 * 1.0 + 0.1 * 5.0 / 3.0)
    # Inference uses the tracked statistics.
    inferred = layer(x, training=False).numpy().ravel()
    np.testing.assert_allclose(inferred, (np.arange(1, 5) - 0.25) / np.sqrt(1.0666667 + 1e-5),
                               rtol=1e-5)



def test_instance_norm_statistics_are_tight_in_float32():
    # A map whose mean is 20 standard deviations from zero, as after a conv with a
    # large bias: plain float32 moments lose the mean to rounding, the shifted ones not.
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 128, 128, 16)) * 0.5 + 20.0).astype(np.float32)
    x64 = x.astype(np.float64)
    exact = (x64 - x64.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        x64.var(axis=(1, 2), keepdims=True) + 1e-5)
    ours = np.abs(model_utils.InstanceNormalization()(x).numpy() - exact).max()
    keras_own = np.abs(keras.layers.GroupNormalization(
        groups=-1, center=False, scale=False, epsilon=1e-5)(x).numpy() - exact).max()
    assert ours < 1e-5 and ours < keras_own / 4


def test_runs_written_before_the_padding_fix_keep_tensorflows_padding(tmp_path):
    import dataclasses
    import json
    import os

    from common import experiment
    from reproductions.context_encoder import train_lib as ce_train_lib
    from reproductions.glcic import train_lib

    config = train_lib.Config(cn_channels=4, d_channels=4)
    experiment.write_paper_config(str(tmp_path), "glcic", config)
    path = os.path.join(tmp_path, experiment.CONFIG_FILE)
    with open(path) as f:
        record = json.load(f)
    assert record["config"]["conv_padding"] == "symmetric"
    del record["config"]["conv_padding"]  # as written before the flag existed
    with open(path, "w") as f:
        json.dump(record, f)
    _, fields = experiment.read_paper_config(str(tmp_path))
    assert experiment.with_legacy_fields(train_lib.Config, fields)["conv_padding"] == "tf_same"
    assert "conv_padding" not in experiment.with_legacy_fields(ce_train_lib.Config, {})
    with pytest.raises(ValueError, match="--conv_padding=tf_same"):
        experiment.check_legacy_resume(str(tmp_path), config, fields)
    experiment.check_legacy_resume(str(tmp_path),
                                   dataclasses.replace(config, conv_padding="tf_same"), fields)
