"""Reading the authors' released networks into the suite's Keras layers.

The helpers each paper's converter (`reproductions/PAPER/convert.py`) is made
of: Torch7 modules and PyTorch state dicts read by `common.torch_files`,
checked module by module against the layer list the suite implements
(`check_module`, raising `LayerMismatch` with the first difference), and their
weights put in Keras' layout (`conv_kernel`, `batch_norm_weights`,
`pytorch_conv`) and set on the named layers (`assign_weights`).
"""

from __future__ import annotations

import numpy as np

from common import torch_files


class LayerMismatch(ValueError):
    """The file's network is not the one this converter maps."""


def conv_kernel(module, kind: str) -> np.ndarray:
    """A Torch (de)convolution's weight in Keras' layout (kh, kw, in, out) / (kh, kw, out, in).

    SpatialConvolution stores (out, in, kh, kw), SpatialFullConvolution
    (in, out, kh, kw); both become Keras' layout by the same transpose, and
    neither needs its taps flipped (all four are correlations or their
    transposes).
    """
    weight = torch_files.t7_field(module, "weight")
    kh, kw = int(module["kH"]), int(module["kW"])
    if kind == "conv":
        shape = (int(module["nOutputPlane"]), int(module["nInputPlane"]), kh, kw)
    else:
        shape = (int(module["nInputPlane"]), int(module["nOutputPlane"]), kh, kw)
    return np.ascontiguousarray(weight.reshape(shape).transpose(2, 3, 1, 0))


def batch_norm_weights(module, epsilon: float = 1e-5) -> list[np.ndarray]:
    """[gamma, beta, moving mean, moving variance] of a SpatialBatchNormalization."""
    eps = float(torch_files.t7_field(module, "eps") or 1e-5)
    if abs(eps - epsilon) > 1e-9:
        raise LayerMismatch(f"a BatchNorm has eps {eps}, the suite's networks {epsilon}.")
    variance = torch_files.t7_field(module, "running_var")
    if variance is None:  # nn before 2016 stored 1 / sqrt(var + eps) as running_std
        variance = 1.0 / np.square(torch_files.t7_field(module, "running_std")) - eps
    channels = variance.shape[0]
    gamma = torch_files.t7_field(module, "weight", np.ones(channels, np.float32))
    beta = torch_files.t7_field(module, "bias", np.zeros(channels, np.float32))
    return [gamma, beta, torch_files.t7_field(module, "running_mean"), variance]


def describe(kind: str, module) -> str:
    fields = ("nInputPlane", "nOutputPlane", "kW", "dW", "padW", "dilationW")
    return f"{kind}(" + ", ".join(f"{f}={module[f]}" for f in fields
                                   if torch_files.t7_field(module, f) is not None) + ")"


def check_module(position: int, kind: str, module, expected_kinds: tuple[str, ...],
                 **expected) -> None:
    """Raises LayerMismatch naming the layer unless `module` is of one of `expected_kinds`
    with the `expected` fields (kW/kH, dW/dH, padW/padH, dilation, planes)."""
    if kind not in expected_kinds:
        raise LayerMismatch(f"module {position + 1} is {kind}, expected "
                            f"{' or '.join(expected_kinds)}.")
    for name, value in expected.items():
        fields = {"kernel": ("kW", "kH"), "stride": ("dW", "dH"), "pad": ("padW", "padH"),
                  "dilation": ("dilationW", "dilationH"), "in": ("nInputPlane",),
                  "out": ("nOutputPlane",)}[name]
        for field in fields:
            actual = torch_files.t7_field(module, field)
            if actual is None and name == "dilation":
                actual = 1
            if actual is None or int(actual) != value:
                raise LayerMismatch(f"module {position + 1} ({describe(kind, module)}) has "
                                    f"{field}={actual}, expected {value}.")


def weight_modules(modules, skip=("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity",
                                   "Dropout")) -> list[tuple[int, str, object]]:
    return [(i, kind, m) for i, (kind, m) in enumerate(modules) if kind not in skip]


def pytorch_conv(state: dict, prefix: str) -> list[np.ndarray]:
    """A PyTorch Conv2d / ConvTranspose2d as Keras [kernel, bias] (the same transpose)."""
    try:
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    except KeyError as error:
        raise LayerMismatch(f"the state dict has no {error.args[0]!r}.") from error
    return [np.ascontiguousarray(weight.astype(np.float32).transpose(2, 3, 1, 0)),
            bias.astype(np.float32)]


def assign_weights(model, weights: dict[str, list[np.ndarray]]) -> None:
    """Sets each named layer's weights, checking every shape."""
    names = {layer.name for layer in model.layers}
    for name, values in weights.items():
        if name not in names:
            raise LayerMismatch(f"the suite's {model.name} has no layer {name!r}.")
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [tuple(v.shape) for v in values]:
            raise LayerMismatch(f"layer {name}: the file gives shapes "
                                f"{[v.shape for v in values]}, the suite's layer {expected}.")
        layer.set_weights(values)
