"""The authors' released Torch7 center-region generators (`paris_inpaintCenter.t7`,
`imagenet_inpaintCenter.t7`) as this suite's Context Encoders: `python -m
reproductions.convert --paper=context_encoder`. train.lua's netG: encoder,
4000-channel bottleneck, decoder to the 64x64 centre.
"""

from __future__ import annotations

import numpy as np

from common import released_weights
from common import torch_files
from reproductions.context_encoder import train_lib

# What the converted network takes and returns, recorded in config.json.
INPUT_CONVENTIONS = ("128x128 RGB in [-1, 1], the inner 56x56 of the centre 64x64 filled "
    "with the ImageNet mean pixel (117, 104, 123) / 255 in [-1, 1], no mask "
    "channel; tanh output: the 64x64 centre.")


def convert_context_encoder(network) -> tuple[object, dict[str, list[np.ndarray]], float]:
    """(Config, {keras layer: weights}, largest dropped bias) of a released center generator.

    The official training zeroes every convolution bias before each forward
    pass, so the suite's networks have none; the file's are the last Adam
    step's leftovers, and their size is reported.
    """
    modules = released_weights.weight_modules(torch_files.t7_modules(network))
    if len(modules) != 20:
        raise released_weights.LayerMismatch(f"the network has {len(modules)} convolution and BatchNorm modules, "
                            "the center-region generator 20 (use the generator, netG).")
    nef = int(modules[0][2]["nOutputPlane"])
    bottleneck = int(modules[9][2]["nOutputPlane"])
    ngf = int(modules[11][2]["nOutputPlane"]) // 8
    plan = [("enc1", "conv", 3, nef, 2, 1, False)]
    plan += [(f"enc{i}", "conv", nef * m // 2 if i > 2 else nef, nef * m, 2, 1, True)
             for i, m in ((2, 1), (3, 2), (4, 4), (5, 8))]
    plan += [("bottleneck", "conv", nef * 8, bottleneck, 1, 0, True),
             ("dec1", "deconv", bottleneck, ngf * 8, 1, 0, True)]
    plan += [(f"dec{i}", "deconv", ngf * m * 2, ngf * m, 2, 1, True)
             for i, m in ((2, 4), (3, 2), (4, 1))]
    plan += [("output", "deconv", ngf, 3, 2, 1, False)]
    weights, largest_bias, index = {}, 0.0, 0
    for name, kind_name, inp, out, stride, pad, has_bn in plan:
        pos, kind, conv = modules[index]
        kinds = ("SpatialConvolution",) if kind_name == "conv" else ("SpatialFullConvolution",)
        released_weights.check_module(pos, kind, conv, kinds, kernel=4, stride=stride, pad=pad,
                     **{"in": inp}, out=out)
        weights[name] = [released_weights.conv_kernel(conv, kind_name)]
        bias = torch_files.t7_field(conv, "bias")
        if bias is not None and bias.size:
            largest_bias = max(largest_bias, float(np.abs(bias).max()))
        index += 1
        if has_bn:
            bn_pos, bn_kind, bn = modules[index]
            released_weights.check_module(bn_pos, bn_kind, bn, ("SpatialBatchNormalization",))
            bn_name = "bottleneck_bn" if name == "bottleneck" else f"{name}_bn"
            weights[bn_name] = released_weights.batch_norm_weights(bn)
            index += 1
    config = train_lib.Config(variant="center", nef=nef, ngf=ngf, ndf=nef,
                              bottleneck=bottleneck)
    return config, weights, largest_bias


def convert_released(weights_path: str) -> tuple[object, object, dict]:
    """(Config, task with the file's weights, what config.json records) of a released file."""
    stored = torch_files.load_t7(weights_path)
    if isinstance(stored, dict) and "netG" not in stored and "model" in stored:
        raise released_weights.LayerMismatch(
            "it holds a table {model, mean}, as GLCIC's release does; Context Encoders' "
            "holds netG or the generator.")
    network = stored.get("netG", stored) if isinstance(stored, dict) else stored
    config, weights, largest_bias = convert_context_encoder(network)
    task = train_lib.build_task(config)
    released_weights.assign_weights(task.generator, weights)
    return config, task, {"format": "Torch7", "input": INPUT_CONVENTIONS,
                          "largest_dropped_bias": largest_bias}
