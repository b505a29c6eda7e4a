"""The authors' PyTorch generator state dict (`latest_G.pth`, a PyTorch >= 1.6 zip) as
this suite's DMFN, read without PyTorch: `python -m reproductions.convert --paper=dmfn`.
"""

from __future__ import annotations

import re

import numpy as np

from common import released_weights
from common import torch_files
from reproductions.dmfn import train_lib

# What the converted network takes and returns, recorded in config.json.
INPUT_CONVENTIONS = ("RGB in [-1, 1], hole pixels set to 0, plus a mask channel (1 = hole); tanh output "
    "in [-1, 1], composited into the known pixels.")


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
    if "encoder.0.conv.weight" not in state:
        raise released_weights.LayerMismatch("no 'encoder.0.conv.weight': not a state dict of DMFN's "
                            "InpaintingGenerator (the discriminator's cannot be converted).")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    num_blocks = max(blocks) + 1 if blocks else 0
    if blocks != set(range(num_blocks)) or not num_blocks:
        raise released_weights.LayerMismatch(f"the generator's blocks are numbered {sorted(blocks)}.")
    channels = int(state["encoder.0.conv.weight"].shape[0])
    mapping = dmfn_key_map(num_blocks)
    unused = sorted({k.rsplit(".", 1)[0] for k in state} - set(mapping.values()))
    if unused:
        raise released_weights.LayerMismatch(f"the state dict has modules the suite's generator lacks: "
                            f"{unused[:5]}.")
    weights = {name: released_weights.pytorch_conv(state, prefix) for name, prefix in mapping.items()}
    config = train_lib.Config(channels=channels, num_blocks=num_blocks, dmfb="official",
                              vgg_weights=None)
    return config, weights


def convert_released(weights_path: str) -> tuple[object, object, dict]:
    """(Config, task with the file's weights, what config.json records) of a released file."""
    config, weights = convert_dmfn(torch_files.read_pth_state_dict(weights_path))
    task = train_lib.build_task(config)
    released_weights.assign_weights(task.generator, weights)
    return config, task, {"format": "PyTorch state dict (zip)", "input": INPUT_CONVENTIONS}
