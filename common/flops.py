"""Floating-point operations of a traced step, counted from its graph's shapes.

Convolutions and matrix products are nearly all of an inpainting network's
arithmetic, so only they are counted, each multiply-add as two operations:

  Conv2D, DepthwiseConv2dNative: 2 * output elements * kernel taps * input channels
                                 (per group)
  Conv2DBackpropInput:           the same product for the convolution it inverts
                                 (the transposed convolution of a decoder, and the
                                 gradient with respect to a convolution's input)
  Conv2DBackpropFilter:          the same product (the gradient of its kernel)
  MatMul, BatchMatMulV2:         2 * m * n * k

so a convolution costs its forward count once in inference and three times in a
train step (forward, input gradient, kernel gradient), except the first layer,
whose input needs no gradient. Dilation does not change a count: a dilated
kernel has the same taps. Element-wise work (activations, normalisation, the
optimizer) is left out; it is a few per cent of these networks' count but can
take a larger share of the time, which is one reason a step stays below the
machine's matrix-product peak.

Only ops that run are counted (those the outputs or the variable updates depend
on). Function calls inside the graph (a `tf.while_loop` body, a function traced
on its own) are followed once per call site.
"""

from __future__ import annotations

import collections
import time
from typing import Mapping

import numpy as np
import tensorflow as tf

CONVOLUTIONS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
                "Conv2DBackpropFilter")
MATRIX_PRODUCTS = ("MatMul", "BatchMatMulV2", "BatchMatMul")


def _shape(tensor: tf.Tensor) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        raise ValueError(f"{tensor.op.name}: shape {shape} is not fully known; trace the "
                         "step with a concrete batch to count its operations.")
    return shape.as_list()


def _kernel_shape(op) -> list[int]:
    """[height, width, in, out] of a convolution's kernel (for the kernel's
    gradient, the op's output)."""
    return _shape(op.outputs[0] if op.type == "Conv2DBackpropFilter" else op.inputs[1])


def op_flops(op) -> int:
    """Operations of one convolution or matrix-product op; 0 for any other op."""
    if op.type in CONVOLUTIONS:
        height, width, in_channels, _ = _kernel_shape(op)
        # Elements of the forward convolution's output: its own output, or the
        # gradient flowing into it (the third input of both gradient ops).
        forward_output = op.outputs[0] if op.type in ("Conv2D", "DepthwiseConv2dNative") \
            else op.inputs[2]
        taps = height * width * (1 if op.type == "DepthwiseConv2dNative" else in_channels)
        return 2 * int(np.prod(_shape(forward_output))) * taps
    if op.type in MATRIX_PRODUCTS:
        a, b = _shape(op.inputs[0]), _shape(op.inputs[1])
        matmul = op.type == "MatMul"
        adjoint_a = op.get_attr("transpose_a" if matmul else "adj_x")
        adjoint_b = op.get_attr("transpose_b" if matmul else "adj_y")
        m, k = (a[-1], a[-2]) if adjoint_a else (a[-2], a[-1])
        n = b[-2] if adjoint_b else b[-1]
        batch = int(np.prod(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))))
        return 2 * batch * m * n * k
    return 0


def _called_functions(op, graph) -> list:
    """Graphs of the functions `op` calls (PartitionedCall, While, If, ...)."""
    called = []
    for name in ("f", "body", "cond", "then_branch", "else_branch"):
        try:
            attr = op.get_attr(name)
        except ValueError:
            continue
        function_name = getattr(attr, "name", None)
        function = graph._functions.get(function_name) if function_name else None
        if function is not None and getattr(function, "graph", None) is not None:
            called.append(function.graph)
    return called


def live_ops(graph) -> list:
    """The ops of `graph` that its outputs or its side effects (variable updates)
    depend on; the rest are never run (a gradient nobody asked for, such as the
    gradient of the input image)."""
    roots = [t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", []))
    live, stack = set(), roots
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op in live]


def graph_flops(graph) -> Mapping[str, int]:
    """op type -> operations of the ops of `graph` that run, and of the functions
    they call."""
    totals = collections.Counter()
    for op in live_ops(graph):
        flops = op_flops(op)
        if flops:
            totals[op.type] += flops
        for called in _called_functions(op, graph):
            totals.update(graph_flops(called))
    return dict(totals)


def function_flops(function, *args) -> Mapping[str, int]:
    """op type -> operations of one call of the tf.function `function` on `args`."""
    return graph_flops(function.get_concrete_function(*args).graph)


def matmul_peak(dtype: tf.DType = tf.float32, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a size x size matrix product in `dtype` on this machine, best of
    `repeats` after one warm-up: the practical peak a step is compared with."""
    a = tf.random.stateless_uniform([size, size], seed=[1, 2], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def product(x):
        return tf.reduce_sum(tf.cast(tf.matmul(x, x), tf.float32))

    product(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best
