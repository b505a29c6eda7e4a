"""reproductions/convert.py: the authors' released files, converted and checked layer by layer.

No released file can be downloaded here, so each test writes a file of the
same format and layer structure with random weights (tests/torch_writers.py)
and checks the converted Keras network against a NumPy forward pass that
follows the file's own layer list with Torch's conventions (NCHW, symmetric
zero padding, transposed convolutions as scatter-adds, BatchNorm from the
running statistics, InstanceNorm per map).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import helpers
import torch_writers as tw
from common import torch_files
from reproductions import convert
from reproductions import inpainters
from reproductions.glcic import model as glcic_model


# --------------------------------------------------------------------------
# A NumPy interpreter of the Torch modules involved (C, H, W layout)
# --------------------------------------------------------------------------

def np_conv(x, weight, bias, stride=1, pad=0, dilation=1):
    channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out_h = (height + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    out_w = (width + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((out_channels, out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, i * dilation: i * dilation + stride * (out_h - 1) + 1: stride,
                           j * dilation: j * dilation + stride * (out_w - 1) + 1: stride]
            out += np.einsum("oc,chw->ohw", weight[:, :, i, j], patch)
    return out + bias[:, None, None]


def np_full_conv(x, weight, bias, stride, pad):
    """Torch's SpatialFullConvolution / PyTorch's ConvTranspose2d (weight: in, out, kh, kw)."""
    _, height, width = x.shape
    _, out_channels, kh, kw = weight.shape
    full = np.zeros((out_channels, (height - 1) * stride + kh, (width - 1) * stride + kw))
    for i in range(kh):
        for j in range(kw):
            full[:, i: i + stride * (height - 1) + 1: stride,
                 j: j + stride * (width - 1) + 1: stride] += np.einsum("io,ihw->ohw",
                                                                       weight[:, :, i, j], x)
    out_h, out_w = (height - 1) * stride - 2 * pad + kh, (width - 1) * stride - 2 * pad + kw
    return full[:, pad: pad + out_h, pad: pad + out_w] + bias[:, None, None]


def np_instance_norm(x, eps=1e-5):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + eps)


def run_torch_modules(modules, x):
    """Forward pass of a flat Torch7 module list, as Torch computes it."""
    for module in modules:
        kind = module.typename.rsplit(".", 1)[-1]
        f = module.fields
        if kind in ("SpatialConvolution", "SpatialDilatedConvolution"):
            x = np_conv(x, f["weight"], f["bias"], f["dW"], f["padW"], f.get("dilationW", 1))
        elif kind == "SpatialFullConvolution":
            x = np_full_conv(x, f["weight"], f["bias"], f["dW"], f["padW"])
        elif kind == "SpatialBatchNormalization":
            x = ((x - f["running_mean"][:, None, None])
                 / np.sqrt(f["running_var"][:, None, None] + f["eps"])
                 * f["weight"][:, None, None] + f["bias"][:, None, None])
        elif kind == "ReLU":
            x = np.maximum(x, 0)
        elif kind == "LeakyReLU":
            x = np.where(x > 0, x, f["negval"] * x)
        elif kind == "Sigmoid":
            x = 0.5 * (1 + np.tanh(x / 2))  # the sigmoid, without overflow
        elif kind == "Tanh":
            x = np.tanh(x)
        else:
            raise AssertionError(kind)
    return x


def _nhwc(x):
    return x.transpose(1, 2, 0)[None].astype(np.float32)


def _relative_error(actual, expected):
    """Largest difference relative to the largest value (float32 against float64)."""
    return np.abs(actual - expected).max() / np.abs(expected).max()


# --------------------------------------------------------------------------
# The released networks' layer lists, with random weights
# --------------------------------------------------------------------------

def glcic_modules(channels, rng, stride2_pad=1):
    """completionnet_*.t7's layer list: 16 x (conv, BN, ReLU), conv, Sigmoid."""
    modules, n_in = [], 4
    for kind, multiple, kernel, stride, dilation in glcic_model.COMPLETION_LAYERS:
        n_out = int(channels * multiple)
        if kind == "conv":
            pad = stride2_pad if stride == 2 else dilation * (kernel - 1) // 2
            modules.append(tw.conv(n_in, n_out, kernel, stride, pad, dilation=dilation, rng=rng))
        else:
            modules.append(tw.full_conv(n_in, n_out, 4, 2, 1, rng))
        modules += [tw.batch_norm(n_out, rng), tw.T7Object("nn.ReLU")]
        n_in = n_out
    return modules + [tw.conv(n_in, 3, 3, 1, 1, rng=rng), tw.T7Object("nn.Sigmoid")]


def context_encoder_modules(nef, ngf, bottleneck, rng):
    """train.lua's center-region netG: netE (a nested Sequential), then the decoder."""
    lrelu = lambda: tw.T7Object("nn.LeakyReLU", negval=0.2)
    encoder = [tw.conv(3, nef, 4, 2, 1, rng=rng), lrelu()]
    for n_in, n_out in ((nef, nef), (nef, 2 * nef), (2 * nef, 4 * nef), (4 * nef, 8 * nef)):
        encoder += [tw.conv(n_in, n_out, 4, 2, 1, rng=rng), tw.batch_norm(n_out, rng), lrelu()]
    encoder += [tw.conv(8 * nef, bottleneck, 4, 1, 0, rng=rng), tw.batch_norm(bottleneck, rng),
                lrelu()]
    decoder = [tw.full_conv(bottleneck, 8 * ngf, 4, 1, 0, rng), tw.batch_norm(8 * ngf, rng),
               tw.T7Object("nn.ReLU")]
    for n_in, n_out in ((8 * ngf, 4 * ngf), (4 * ngf, 2 * ngf), (2 * ngf, ngf)):
        decoder += [tw.full_conv(n_in, n_out, 4, 2, 1, rng), tw.batch_norm(n_out, rng),
                    tw.T7Object("nn.ReLU")]
    decoder += [tw.full_conv(ngf, 3, 4, 2, 1, rng), tw.T7Object("nn.Tanh")]
    return encoder, decoder



def _zero_conv_biases(modules):
    # The official training zeroes every convolution bias before each forward pass.
    for m in modules:
        if "Convolution" in m.typename:
            m.fields["bias"] = np.zeros_like(m.fields["bias"])


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_glcic_released_network_converts_to_the_same_function(tmp_path):
    rng = np.random.default_rng(0)
    modules = glcic_modules(4, rng)
    path = tmp_path / "completionnet_places2.t7"
    mean = np.array([0.45, 0.43, 0.40])
    tw.write_t7(path, {"model": tw.sequential(*modules), "mean": mean})
    record = convert.convert("glcic", str(path), str(tmp_path / "run"))
    assert record["sha256"] == torch_files.sha256(str(path)) and record["format"] == "Torch7"
    paper, task = inpainters.load_task(str(tmp_path / "run"))
    assert paper == "glcic" and task.config.cn_channels == 4
    np.testing.assert_allclose(task.mean_pixel.numpy(), mean, rtol=1e-6)
    x = rng.uniform(-0.5, 0.5, (4, 20, 24))  # sides multiples of 4, not powers of two
    expected = run_torch_modules(modules, x)
    actual = task.completion(_nhwc(x), training=False).numpy()[0].transpose(2, 0, 1)
    assert _relative_error(actual, expected) < 1e-4
    # And the first layers alone, where a padding or layout slip shows most plainly.
    first = run_torch_modules(modules[:6], x)  # conv 5x5, BN, ReLU, conv 3x3 /2, BN, ReLU
    import keras
    head = keras.Model(task.completion.input, task.completion.get_layer("relu2").output)
    assert _relative_error(head(_nhwc(x), training=False).numpy()[0].transpose(2, 0, 1),
                           first) < 1e-5
    with open(tmp_path / "run" / "config.json") as f:
        stored = json.load(f)
    assert stored["converted_from"]["mean_pixel"] == pytest.approx(list(mean))
    assert "minus the training set's mean pixel" in stored["converted_from"]["input"]
    # The suite's tools take the converted run.
    image = rng.uniform(0, 1, (30, 34, 3)).astype(np.float32)
    mask = np.zeros((30, 34), bool)
    mask[8:20, 10:22] = True
    completed = inpainters.load(f"glcic:{tmp_path / 'run'}", postprocess=False)(image, mask)
    assert completed.shape == image.shape and np.array_equal(completed[~mask], image[~mask])


def test_context_encoder_released_generator_converts_to_the_same_function(tmp_path):
    rng = np.random.default_rng(1)
    encoder, decoder = context_encoder_modules(4, 4, 8, rng)
    path = tmp_path / "paris_inpaintCenter.t7"
    tw.write_t7(path, tw.sequential(tw.sequential(*encoder), *decoder))
    record = convert.convert("context_encoder", str(path), str(tmp_path / "run"))
    assert record["largest_dropped_bias"] > 0  # reported, since the suite's convs have none
    _, task = inpainters.load_task(str(tmp_path / "run"))
    assert (task.config.nef, task.config.ngf, task.config.bottleneck) == (4, 4, 8)
    _zero_conv_biases(encoder + decoder)
    x = rng.uniform(-1, 1, (3, 128, 128))
    expected = run_torch_modules(encoder + decoder, x)
    actual = task.generator(_nhwc(x), training=False).numpy()[0].transpose(2, 0, 1)
    assert actual.shape == (3, 64, 64)
    # float32 against float64 through twelve layers and a saturating tanh; a
    # layout, padding or BatchNorm slip gives errors of order 1.
    assert _relative_error(actual, expected) < 1e-3


def dmfn_state_dict(channels, num_blocks, rng):
    """InpaintingGenerator(in_nc=4, out_nc=3, nf, n_res).state_dict() names and shapes."""
    c, state = channels, {}

    def conv(name, n_in, n_out, k):
        state[f"{name}.weight"] = rng.normal(0, 0.2, (n_out, n_in, k, k))
        state[f"{name}.bias"] = rng.normal(0, 0.1, n_out)

    conv("encoder.0.conv", 4, c, 5)
    conv("encoder.1.conv", c, 2 * c, 3)
    conv("encoder.2.conv", 2 * c, 2 * c, 3)
    conv("encoder.3.conv", 2 * c, 4 * c, 3)
    for b in range(num_blocks):
        conv(f"blocks.{b}.c1", 4 * c, c, 3)
        for d in range(1, 5):
            conv(f"blocks.{b}.d{d}", c, c, 3)
        conv(f"blocks.{b}.c2", 4 * c, 4 * c, 3)
    conv("decoder.0.conv", 4 * c, 4 * c, 3)
    for i, (n_in, n_out) in ((1, (4 * c, 2 * c)), (2, (2 * c, c))):
        state[f"decoder.{i}.deconv.weight"] = rng.normal(0, 0.2, (n_in, n_out, 4, 4))
        state[f"decoder.{i}.deconv.bias"] = rng.normal(0, 0.1, n_out)
        conv(f"decoder.{i}.conv.conv", n_out, n_out, 3)
    conv("decoder.3.conv", c, 3, 3)
    return state


def dmfn_forward(state, num_blocks, x):
    """architecture.py's InpaintingGenerator.forward in NumPy."""
    relu = lambda v: np.maximum(v, 0)
    conv = lambda v, name, stride=1, pad=1, dilation=1: np_conv(
        v, state[f"{name}.weight"], state[f"{name}.bias"], stride, pad, dilation)
    x = relu(conv(x, "encoder.0.conv", pad=2))
    x = relu(np_instance_norm(conv(x, "encoder.1.conv", stride=2)))
    x = relu(np_instance_norm(conv(x, "encoder.2.conv")))
    x = relu(np_instance_norm(conv(x, "encoder.3.conv", stride=2)))
    for b in range(num_blocks):
        t = relu(np_instance_norm(conv(x, f"blocks.{b}.c1")))
        d = [conv(t, f"blocks.{b}.d{i + 1}", pad=r, dilation=r) for i, r in enumerate((1, 2, 4, 8))]
        k2 = d[0] + d[1]
        k3 = k2 + d[2]
        combined = np.concatenate([d[0], k2, k3, k3 + d[3]])
        x = x + np_instance_norm(conv(relu(np_instance_norm(combined)), f"blocks.{b}.c2"))
    x = relu(np_instance_norm(conv(x, "decoder.0.conv")))
    for i in (1, 2):
        x = np_full_conv(x, state[f"decoder.{i}.deconv.weight"], state[f"decoder.{i}.deconv.bias"],
                         2, 1)
        x = relu(np_instance_norm(x))
        x = relu(np_instance_norm(conv(x, f"decoder.{i}.conv.conv")))
    return np.tanh(conv(x, "decoder.3.conv"))


def test_dmfn_released_generator_converts_to_the_same_function(tmp_path):
    rng = np.random.default_rng(2)
    state = dmfn_state_dict(4, 2, rng)
    path = tmp_path / "latest_G.pth"
    tw.write_pth(path, {f"module.{k}": v for k, v in state.items()})  # as saved from DataParallel
    record = convert.convert("dmfn", str(path), str(tmp_path / "run"))
    assert record["config"] == {"channels": 4, "num_blocks": 2}
    _, task = inpainters.load_task(str(tmp_path / "run"))
    x = rng.uniform(-1, 1, (4, 24, 20))
    expected = dmfn_forward(state, 2, x)
    actual = task.generator(_nhwc(x), training=False).numpy()[0].transpose(2, 0, 1)
    assert _relative_error(actual, expected) < 1e-4


def test_converter_refuses_other_networks_and_other_files(tmp_path):
    rng = np.random.default_rng(3)
    # TensorFlow-style padding of a stride-2 conv is another network: named, refused.
    asymmetric = tmp_path / "other.t7"
    tw.write_t7(asymmetric, {"model": tw.sequential(*glcic_modules(4, rng, stride2_pad=0)),
                             "mean": np.zeros(3)})
    with pytest.raises(ValueError, match=r"module 4 .*padW=0, expected 1"):
        convert.convert("glcic", str(asymmetric), str(tmp_path / "a"))
    # A state dict of another network.
    other = tmp_path / "other.pth"
    tw.write_pth(other, {"conv.weight": np.zeros((2, 2, 3, 3))})
    with pytest.raises(ValueError, match="InpaintingGenerator"):
        convert.convert("dmfn", str(other), str(tmp_path / "b"))
    # A damaged checkpoint (neither format).
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint: neither the zip"):
        convert.convert("dmfn", str(legacy), str(tmp_path / "c"))
    # A pickle that names anything but tensors is refused before anything runs.
    import zipfile
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("archive/data.pkl", b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(ValueError, match="unexpected object os.system"):
        convert.convert("dmfn", str(evil), str(tmp_path / "d"))
    with pytest.raises(ValueError, match="structural_inpainting"):
        convert.convert("structural_inpainting", str(legacy), str(tmp_path / "e"))
    # GLCIC's release given as Context Encoders': named, not a traceback.
    glcic_file = tmp_path / "completionnet.t7"
    tw.write_t7(glcic_file, {"model": tw.sequential(*glcic_modules(4, rng)), "mean": np.zeros(3)})
    with pytest.raises(ValueError, match=r"not the context_encoder network .*GLCIC's release"):
        convert.convert("context_encoder", str(glcic_file), str(tmp_path / "f"))
    assert torch_files.t7_modules({"model": 1}) == [("table", {"model": 1})]


def test_convert_command_writes_a_run_and_refuses_to_overwrite_one(tmp_path):
    rng = np.random.default_rng(4)
    encoder, decoder = context_encoder_modules(4, 4, 8, rng)
    path = tmp_path / "imagenet_inpaintCenter.t7"
    tw.write_t7(path, tw.sequential(tw.sequential(*encoder), *decoder))
    command = [sys.executable, "-m", "reproductions.convert", "--paper=context_encoder",
               f"--weights={path}", f"--workdir={tmp_path / 'run'}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            cwd=helpers.REPO, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["file"] == path.name
    again = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           cwd=helpers.REPO, env=env)
    assert again.returncode == 1 and "already holds checkpoints" in again.stderr
