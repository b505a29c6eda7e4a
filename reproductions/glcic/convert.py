"""The authors' released Torch7 completion networks (`completionnet_places2.t7` and the
others of the same layer list) as this suite's GLCIC: `python -m reproductions.convert
--paper=glcic`. The file is a table {model, mean}: the 17-layer network and the
training set's mean pixel, which becomes the run's mean pixel.
"""

from __future__ import annotations

import numpy as np

from common import released_weights
from common import torch_files
from reproductions.glcic import model as glcic_model
from reproductions.glcic import train_lib

# What the converted network takes and returns, recorded in config.json.
INPUT_CONVENTIONS = ("RGB in [0, 1] minus the training set's mean pixel (from the file), hole pixels "
    "set to 0, plus a mask channel (1 = hole); sigmoid output in [0, 1]; any size that "
    "is a multiple of 4 (inpaint.lua resizes to one).")


def convert_glcic(network, mean) -> tuple[object, dict[str, list[np.ndarray]], np.ndarray]:
    """(Config, {keras layer: weights}, mean pixel) of a released GLCIC completion network."""
    modules = released_weights.weight_modules(torch_files.t7_modules(network))
    expected_count = 2 * len(glcic_model.COMPLETION_LAYERS) + 1
    if len(modules) != expected_count:
        raise released_weights.LayerMismatch(f"the network has {len(modules)} convolution and BatchNorm "
                            f"modules, GLCIC's completion network {expected_count}.")
    first = modules[0][2]
    channels = int(first["nOutputPlane"])
    weights, in_channels = {}, 4
    for n, (kind_name, multiple, kernel, stride, dilation) in enumerate(
            glcic_model.COMPLETION_LAYERS, start=1):
        (pos, kind, conv), (bn_pos, bn_kind, bn) = modules[2 * n - 2], modules[2 * n - 1]
        out = int(channels * multiple)
        if kind_name == "conv":
            kinds = ("SpatialDilatedConvolution", "SpatialConvolution")
            released_weights.check_module(pos, kind, conv, kinds, kernel=kernel, stride=stride,
                         pad=dilation * (kernel - 1) // 2, dilation=dilation, **{"in": in_channels},
                         out=out)
            weights[f"conv{n}"] = [released_weights.conv_kernel(conv, "conv"), torch_files.t7_field(conv, "bias", np.zeros(out, np.float32))]
        else:
            released_weights.check_module(pos, kind, conv, ("SpatialFullConvolution",), kernel=4, stride=2, pad=1,
                         **{"in": in_channels}, out=out)
            weights[f"deconv{n}"] = [released_weights.conv_kernel(conv, "deconv"), torch_files.t7_field(conv, "bias", np.zeros(out, np.float32))]
        released_weights.check_module(bn_pos, bn_kind, bn, ("SpatialBatchNormalization",))
        weights[f"bn{n}"] = released_weights.batch_norm_weights(bn)
        in_channels = out
    pos, kind, last = modules[-1]
    released_weights.check_module(pos, kind, last, ("SpatialConvolution",), kernel=3, stride=1, pad=1,
                 **{"in": in_channels}, out=3)
    weights["conv17"] = [released_weights.conv_kernel(last, "conv"), torch_files.t7_field(last, "bias", np.zeros(3, np.float32))]
    mean = np.asarray(mean, np.float32).reshape(-1)
    if mean.shape != (3,):
        raise released_weights.LayerMismatch(f"the file's mean pixel has {mean.size} values, expected 3 (RGB).")
    config = train_lib.Config(cn_channels=channels, mean_pixel=tuple(float(v) for v in mean))
    return config, weights, mean


def convert_released(weights_path: str) -> tuple[object, object, dict]:
    """(Config, task with the file's weights, what config.json records) of a released file."""
    stored = torch_files.load_t7(weights_path)
    if not isinstance(stored, dict) or "model" not in stored or "mean" not in stored:
        raise released_weights.LayerMismatch("expected a table {model, mean} as inpaint.lua loads.")
    config, weights, mean = convert_glcic(stored["model"], stored["mean"])
    task = train_lib.build_task(config)
    released_weights.assign_weights(task.completion, weights)
    task.mean_pixel.assign(mean)
    return config, task, {"format": "Torch7", "input": INPUT_CONVENTIONS,
                          "mean_pixel": [float(v) for v in mean]}
