"""FLOP counts of traced steps, checked against counts worked out by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import flops


def small_network():
    """[2, 8, 8, 3] -> conv 3x3 (4) -> conv 3x3 stride 2 dilation-free (6) ->
    transposed conv 4x4 stride 2 (2) -> flatten -> dense (5)."""
    inputs = keras.Input((8, 8, 3), batch_size=2)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)
    x = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same")(x)
    outputs = keras.layers.Dense(5)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


# By hand, each multiply-add counted as 2:
CONV1 = 2 * (2 * 8 * 8 * 4) * (3 * 3 * 3)        # output elements x taps x input channels
CONV2 = 2 * (2 * 4 * 4 * 6) * (3 * 3 * 4)
TRANSPOSED = 2 * (2 * 4 * 4 * 6) * (4 * 4 * 2)   # as the 4x4 conv from 8x8x2 to 4x4x6 it inverts
DENSE = 2 * 2 * (8 * 8 * 2) * 5                  # batch x inputs x outputs


def test_inference_counts_each_layer_once():
    model = small_network()
    counted = flops.function_flops(tf.function(lambda x: model(x)), tf.zeros([2, 8, 8, 3]))
    assert counted == {"Conv2D": CONV1 + CONV2, "Conv2DBackpropInput": TRANSPOSED,
                       "MatMul": DENSE}


def test_a_train_step_counts_forward_and_both_gradients_but_not_the_image_gradient():
    model = small_network()
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x) ** 2)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    counted = flops.function_flops(step, tf.zeros([2, 8, 8, 3]))
    # Forward; kernel gradient of every conv; input gradient of every layer but the
    # first (the image is not trained). The transposed conv's input gradient is a Conv2D
    # and its kernel gradient a Conv2DBackpropFilter, each the same count.
    assert counted["Conv2D"] == CONV1 + CONV2 + TRANSPOSED
    assert counted["Conv2DBackpropFilter"] == CONV1 + CONV2 + TRANSPOSED
    assert counted["Conv2DBackpropInput"] == TRANSPOSED + CONV2
    assert counted["MatMul"] == 3 * DENSE
    assert sum(counted.values()) == 3 * (CONV1 + CONV2 + TRANSPOSED + DENSE) - CONV1


def test_dilation_and_batched_products():
    dilated = keras.layers.Conv2D(3, 3, dilation_rate=2, padding="same")
    counted = flops.function_flops(tf.function(lambda x: dilated(x)), tf.zeros([1, 10, 10, 2]))
    assert counted == {"Conv2D": 2 * (10 * 10 * 3) * (3 * 3 * 2)}
    a, b = tf.zeros([4, 5, 6]), tf.zeros([6, 7])
    counted = flops.function_flops(tf.function(lambda a, b: tf.matmul(a, b)), a, b)
    assert sum(counted.values()) == 2 * 4 * 5 * 7 * 6
    counted = flops.function_flops(
        tf.function(lambda a: tf.matmul(a, a, transpose_b=True)), tf.zeros([5, 6]))
    assert sum(counted.values()) == 2 * 5 * 5 * 6


def test_a_loop_body_is_counted_once_per_call_site():
    kernel = tf.zeros([3, 3, 2, 2])

    @tf.function
    def looped(x):
        for _ in tf.range(3):
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
        return x

    assert flops.function_flops(looped, tf.zeros([1, 4, 4, 2])) == {
        "Conv2D": 2 * (4 * 4 * 2) * (3 * 3 * 2)}


def test_unknown_shapes_are_refused():
    spec = tf.TensorSpec([None, 8, 8, 3])
    conv = keras.layers.Conv2D(2, 3)
    function = tf.function(lambda x: conv(x))
    with pytest.raises(ValueError, match="not fully known"):
        flops.function_flops(function, spec)


def test_matmul_peak_is_a_plausible_rate():
    rate = flops.matmul_peak(size=256, repeats=2)
    assert 1e8 < rate < 1e15 and np.isfinite(rate)


def test_the_train_benchmark_reports_flops_and_the_fraction_of_peak():
    import json
    import os
    import subprocess
    import sys

    from helpers import REPO
    result = subprocess.run(
        [sys.executable, "benchmarks/train_throughput.py", "--paper=context_encoder",
         "--config=smoke.cfg", "--batch_size=2", "--steps=2", "--warmup=1"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["gflop_per_step"] > 0 and report["matmul_gflop_per_second"] > 0
    expected = (report["gflop_per_step"] * report["images_per_second"] / 2
                / report["matmul_gflop_per_second"])
    assert report["fraction_of_peak"] == pytest.approx(expected, rel=0.05, abs=2e-3)
    assert "% of a matrix product's" in result.stderr
