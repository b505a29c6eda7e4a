r"""Turns the authors' released weights into a work directory of this suite.

  python -m reproductions.convert --paper=glcic --weights=completionnet_places2.t7 \
      --workdir=runs/glcic_places2_official
  python -m reproductions.convert --paper=context_encoder --weights=paris_inpaintCenter.t7 \
      --workdir=runs/ce_paris_official
  python -m reproductions.convert --paper=dmfn --weights=latest_G.pth \
      --workdir=runs/dmfn_celebahq_official

The work directory (config.json + checkpoints/) is what `inpaint`,
`inpaint-eval`, `reproductions/export.py` and the notebooks take, e.g.
`inpaint --method=glcic:runs/glcic_places2_official`. Supported files:

  * glcic: the released Torch7 completion networks (`completionnet_places2.t7`
    and the others of the same layer list), a table {model, mean}: the
    17-layer network and the training set's mean pixel, which becomes the
    run's mean pixel.
  * context_encoder: the released Torch7 center-region generators
    (`paris_inpaintCenter.t7`, `imagenet_inpaintCenter.t7`): train.lua's
    netG (encoder, 4000-channel bottleneck, decoder to the 64x64 centre).
  * dmfn: the authors' PyTorch generator state dict (`latest_G.pth`, a
    PyTorch >= 1.6 zip), read without PyTorch.

Every file is checked against the layer list the suite implements (layer
types, kernels, strides, paddings, dilations, channel counts); a file of
another network is refused with the first difference named. Widths are read
from the file. The authors released no discriminators: the converted work
directory holds a freshly initialised one, so it is meant for inference,
evaluation and export, not for resuming their training. config.json records
the source file, its SHA-256 and the paper's input conventions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from common import experiment
from common import flags as common_flags
from common import run_dir
from common import torch_files
from common.errors import UserError
from reproductions.papers import PAPERS

CONVERTIBLE = ("glcic", "context_encoder", "dmfn")

INPUT_CONVENTIONS = {
    "glcic": "RGB in [0, 1] minus the training set's mean pixel (from the file), hole pixels "
             "set to 0, plus a mask channel (1 = hole); sigmoid output in [0, 1]; any size that "
             "is a multiple of 4 (inpaint.lua resizes to one).",
    "context_encoder": "128x128 RGB in [-1, 1], the inner 56x56 of the centre 64x64 filled "
                       "with the ImageNet mean pixel (117, 104, 123) / 255 in [-1, 1], no mask "
                       "channel; tanh output: the 64x64 centre.",
    "dmfn": "RGB in [-1, 1], hole pixels set to 0, plus a mask channel (1 = hole); tanh output "
            "in [-1, 1], composited into the known pixels.",
}


class LayerMismatch(ValueError):
    """The file's network is not the one this converter maps."""


# --------------------------------------------------------------------------
# Torch7 modules -> Keras layers
# --------------------------------------------------------------------------

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


def _describe(kind: str, module) -> str:
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
                raise LayerMismatch(f"module {position + 1} ({_describe(kind, module)}) has "
                                    f"{field}={actual}, expected {value}.")


def _weight_modules(modules, skip=("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity",
                                   "Dropout")) -> list[tuple[int, str, object]]:
    return [(i, kind, m) for i, (kind, m) in enumerate(modules) if kind not in skip]


def convert_glcic(network, mean) -> tuple[object, dict[str, list[np.ndarray]], np.ndarray]:
    """(Config, {keras layer: weights}, mean pixel) of a released GLCIC completion network."""
    from reproductions.glcic import model as glcic_model
    from reproductions.glcic import train_lib

    modules = _weight_modules(torch_files.t7_modules(network))
    expected_count = 2 * len(glcic_model.COMPLETION_LAYERS) + 1
    if len(modules) != expected_count:
        raise LayerMismatch(f"the network has {len(modules)} convolution and BatchNorm "
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
            check_module(pos, kind, conv, kinds, kernel=kernel, stride=stride,
                         pad=dilation * (kernel - 1) // 2, dilation=dilation, **{"in": in_channels},
                         out=out)
            weights[f"conv{n}"] = [conv_kernel(conv, "conv"), torch_files.t7_field(conv, "bias", np.zeros(out, np.float32))]
        else:
            check_module(pos, kind, conv, ("SpatialFullConvolution",), kernel=4, stride=2, pad=1,
                         **{"in": in_channels}, out=out)
            weights[f"deconv{n}"] = [conv_kernel(conv, "deconv"), torch_files.t7_field(conv, "bias", np.zeros(out, np.float32))]
        check_module(bn_pos, bn_kind, bn, ("SpatialBatchNormalization",))
        weights[f"bn{n}"] = batch_norm_weights(bn)
        in_channels = out
    pos, kind, last = modules[-1]
    check_module(pos, kind, last, ("SpatialConvolution",), kernel=3, stride=1, pad=1,
                 **{"in": in_channels}, out=3)
    weights["conv17"] = [conv_kernel(last, "conv"), torch_files.t7_field(last, "bias", np.zeros(3, np.float32))]
    mean = np.asarray(mean, np.float32).reshape(-1)
    if mean.shape != (3,):
        raise LayerMismatch(f"the file's mean pixel has {mean.size} values, expected 3 (RGB).")
    config = train_lib.Config(cn_channels=channels, mean_pixel=tuple(float(v) for v in mean))
    return config, weights, mean


def convert_context_encoder(network) -> tuple[object, dict[str, list[np.ndarray]], float]:
    """(Config, {keras layer: weights}, largest dropped bias) of a released center generator.

    The official training zeroes every convolution bias before each forward
    pass, so the suite's networks have none; the file's are the last Adam
    step's leftovers, and their size is reported.
    """
    from reproductions.context_encoder import train_lib

    modules = _weight_modules(torch_files.t7_modules(network))
    if len(modules) != 20:
        raise LayerMismatch(f"the network has {len(modules)} convolution and BatchNorm modules, "
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
        check_module(pos, kind, conv, kinds, kernel=4, stride=stride, pad=pad,
                     **{"in": inp}, out=out)
        weights[name] = [conv_kernel(conv, kind_name)]
        bias = torch_files.t7_field(conv, "bias")
        if bias is not None and bias.size:
            largest_bias = max(largest_bias, float(np.abs(bias).max()))
        index += 1
        if has_bn:
            bn_pos, bn_kind, bn = modules[index]
            check_module(bn_pos, bn_kind, bn, ("SpatialBatchNormalization",))
            bn_name = "bottleneck_bn" if name == "bottleneck" else f"{name}_bn"
            weights[bn_name] = batch_norm_weights(bn)
            index += 1
    config = train_lib.Config(variant="center", nef=nef, ngf=ngf, ndf=nef,
                              bottleneck=bottleneck)
    return config, weights, largest_bias


# --------------------------------------------------------------------------
# DMFN: PyTorch state dict -> Keras layers
# --------------------------------------------------------------------------

def _pt_conv(state: dict, prefix: str) -> list[np.ndarray]:
    """A PyTorch Conv2d / ConvTranspose2d as Keras [kernel, bias] (the same transpose)."""
    try:
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    except KeyError as error:
        raise LayerMismatch(f"the state dict has no {error.args[0]!r}.") from error
    return [np.ascontiguousarray(weight.astype(np.float32).transpose(2, 3, 1, 0)),
            bias.astype(np.float32)]


def dmfn_key_map(num_blocks: int) -> dict[str, str]:
    """{Keras layer of the suite's generator: PyTorch module of InpaintingGenerator}."""
    mapping = {"enc1": "encoder.0.conv", "enc2": "encoder.1.conv", "enc3": "encoder.2.conv",
               "enc4": "encoder.3.conv", "dec1": "decoder.0.conv",
               "dec2_up": "decoder.1.deconv", "dec2": "decoder.1.conv.conv",
               "dec3_up": "decoder.2.deconv", "dec3": "decoder.2.conv.conv",
               "output": "decoder.3.conv"}
    for b in range(num_blocks):
        block = f"dmfb{b + 1}"
        mapping.update({f"{block}_reduce": f"blocks.{b}.c1", f"{block}_fuse": f"blocks.{b}.c2"})
        for branch, rate in zip(("d1", "d2", "d3", "d4"), (1, 2, 4, 8)):
            mapping[f"{block}_d{rate}"] = f"blocks.{b}.{branch}"
    return mapping


def convert_dmfn(state: dict[str, np.ndarray]) -> tuple[object, dict[str, list[np.ndarray]]]:
    """(Config, {keras layer: weights}) of the authors' generator state dict."""
    from reproductions.dmfn import train_lib

    if "encoder.0.conv.weight" not in state:
        raise LayerMismatch("no 'encoder.0.conv.weight': not a state dict of DMFN's "
                            "InpaintingGenerator (the discriminator's cannot be converted).")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    num_blocks = max(blocks) + 1 if blocks else 0
    if blocks != set(range(num_blocks)) or not num_blocks:
        raise LayerMismatch(f"the generator's blocks are numbered {sorted(blocks)}.")
    channels = int(state["encoder.0.conv.weight"].shape[0])
    mapping = dmfn_key_map(num_blocks)
    unused = sorted({k.rsplit(".", 1)[0] for k in state} - set(mapping.values()))
    if unused:
        raise LayerMismatch(f"the state dict has modules the suite's generator lacks: "
                            f"{unused[:5]}.")
    weights = {name: _pt_conv(state, prefix) for name, prefix in mapping.items()}
    config = train_lib.Config(channels=channels, num_blocks=num_blocks, dmfb="official",
                              vgg_weights=None)
    return config, weights


# --------------------------------------------------------------------------
# Writing the work directory
# --------------------------------------------------------------------------

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


def write_workdir(paper: str, task, config, workdir: str, record: dict) -> str:
    """config.json and a step-0 checkpoint of `task`, as a training run writes them."""
    if run_dir.has_checkpoint(workdir):
        raise UserError(f"--workdir {workdir} already holds checkpoints: give a new folder.")
    os.makedirs(workdir, exist_ok=True)
    experiment.write_paper_config(workdir, paper, config, extra={"converted_from": record})
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    phase = tf.Variable(0, dtype=tf.int64, trainable=False, name="phase")
    checkpoint = tf.train.Checkpoint(step=step, phase=phase, **task.checkpoint_items())
    manager = tf.train.CheckpointManager(checkpoint, run_dir.checkpoint_dir(workdir),
                                         max_to_keep=1)
    return manager.save(checkpoint_number=0)


def convert(paper: str, weights_path: str, workdir: str) -> dict:
    """Converts one released file into a work directory; returns what config.json records."""
    if paper not in CONVERTIBLE:
        raise UserError(f"--paper: released weights can be converted for {CONVERTIBLE}, got "
                         f"{paper!r} (Structural Inpainting's port released none).")
    record = {"file": os.path.basename(weights_path), "sha256": torch_files.sha256(weights_path),
              "input": INPUT_CONVENTIONS[paper]}
    try:
        if paper == "dmfn":
            from reproductions.dmfn import train_lib
            config, weights = convert_dmfn(torch_files.read_pth_state_dict(weights_path))
            record["format"] = "PyTorch state dict (zip)"
            task = train_lib.build_task(config)
            assign_weights(task.generator, weights)
        else:
            stored = torch_files.load_t7(weights_path)
            record["format"] = "Torch7"
            if paper == "glcic":
                from reproductions.glcic import train_lib
                if not isinstance(stored, dict) or "model" not in stored or "mean" not in stored:
                    raise LayerMismatch("expected a table {model, mean} as inpaint.lua loads.")
                config, weights, mean = convert_glcic(stored["model"], stored["mean"])
                task = train_lib.build_task(config)
                assign_weights(task.completion, weights)
                task.mean_pixel.assign(mean)
                record["mean_pixel"] = [float(v) for v in mean]
            else:
                from reproductions.context_encoder import train_lib
                if isinstance(stored, dict) and "netG" not in stored and "model" in stored:
                    raise LayerMismatch("it holds a table {model, mean}, as GLCIC's release "
                                        "does; Context Encoders' holds netG or the generator.")
                network = stored.get("netG", stored) if isinstance(stored, dict) else stored
                config, weights, largest_bias = convert_context_encoder(network)
                task = train_lib.build_task(config)
                assign_weights(task.generator, weights)
                record["largest_dropped_bias"] = largest_bias
    except LayerMismatch as error:
        raise UserError(f"--weights {weights_path!r} is not the {paper} network the suite "
                         f"implements: {error}") from error
    record["config"] = {k: v for k, v in dataclasses.asdict(config).items()
                        if k in ("cn_channels", "channels", "num_blocks", "nef", "ngf",
                                 "bottleneck")}
    record["checkpoint"] = write_workdir(paper, task, config, workdir, record)
    return record


def define_flags() -> None:
    """The command's flags; defined only when it runs, so that importing this module
    (as the tests do, next to other tools that have a --workdir) defines none."""
    flags.DEFINE_enum("paper", None, list(CONVERTIBLE), "Whose released weights --weights "
                      "holds.")
    flags.DEFINE_string("weights", None, "The released file (.t7 for glcic and "
                        "context_encoder, .pth for dmfn).")
    flags.DEFINE_string("workdir", None, "New folder for the converted run.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for name in ("paper", "weights", "workdir"):
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    assert set(CONVERTIBLE) <= set(PAPERS)
    with common_flags.user_errors():
        record = convert(flags.FLAGS.paper, flags.FLAGS.weights, flags.FLAGS.workdir)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    define_flags()
    common_flags.run_app(main, __doc__, __name__)
