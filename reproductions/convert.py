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

Each paper's converter is its folder's `convert.py` (`convert_released`, named
by its `Paper` record; the shared readers are `common.released_weights`). Every
file is checked against the layer list the suite implements (layer
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

import tensorflow as tf
from absl import app
from absl import flags

from common import cli
from common import experiment
from common import released_weights
from common import run_dir
from common import torch_files
from common.errors import UserError
from reproductions import papers

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


def convertible_papers() -> list[str]:
    """The papers whose record has a converter of released weights."""
    return [record.name for record in papers.all_papers() if record.convert_released]


def convert(paper: str, weights_path: str, workdir: str) -> dict:
    """Converts one released file into a work directory; returns what config.json records."""
    record_of_paper = papers.get(paper) if paper in papers.PAPERS else None
    if record_of_paper is None or record_of_paper.convert_released is None:
        raise UserError(f"--paper: released weights can be converted for "
                        f"{convertible_papers()}, got {paper!r}"
                        + (" (its authors released none)." if record_of_paper else "."))
    record = {"file": os.path.basename(weights_path), "sha256": torch_files.sha256(weights_path)}
    try:
        config, task, fields = record_of_paper.convert_released(weights_path)
    except released_weights.LayerMismatch as error:
        raise UserError(f"--weights {weights_path!r} is not the {paper} network the suite "
                        f"implements: {error}") from error
    record.update(fields)
    record["config"] = {k: v for k, v in dataclasses.asdict(config).items()
                        if k in ("cn_channels", "channels", "num_blocks", "nef", "ngf",
                                 "bottleneck")}
    record["checkpoint"] = write_workdir(paper, task, config, workdir, record)
    return record


def define_flags() -> None:
    """The command's flags; defined only when it runs, so that importing this module
    (as the tests do, next to other tools that have a --workdir) defines none."""
    flags.DEFINE_enum("paper", None, convertible_papers(), "Whose released weights --weights "
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
    with cli.user_errors():
        record = convert(flags.FLAGS.paper, flags.FLAGS.weights, flags.FLAGS.workdir)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    define_flags()
    cli.run_app(main, __doc__, __name__)
