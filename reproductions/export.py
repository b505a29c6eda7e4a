r"""Exports a trained reproduction as a SavedModel with a serving signature (image, mask).

  python reproductions/export.py --workdir=runs/glcic_places --output=exported/glcic

The SavedModel loads without this suite's code:

  model = tf.saved_model.load("exported/glcic")
  composite = model.serve(image, mask)   # [N, H, W, 3] in [0, 1], [N, H, W, 1] with 1 = hole

and returns the composite (known pixels unchanged), with the paper's size policy
inside the graph: resize to 128 for the center-region models, padding to a
multiple of 4 for the fully convolutional ones. A paper's post-processing
(GLCIC's Poisson blending) runs in OpenCV, outside the graph, so the exported
GLCIC's `serve` returns the network's composite without it. The export also
writes `inpainting.json` (the paper, and whether post-processing is left to the
caller): `inpaint --method=saved_model:PATH` reads it and applies the
post-processing as `--method=glcic:WORKDIR` does (`--nopostprocess` to skip it);
a caller of `serve` applies it with the paper's function, for GLCIC
`reproductions.glcic.postprocess.poisson_blend_batch`.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from absl import app
from absl import flags

from common import cli
from common import masks
from common import train_loop
from common.errors import UserError
from reproductions import inpainters
from reproductions import papers


def serving_function(paper: str, task: train_loop.Task):
    """(image [N,H,W,3] in [0,1], mask [N,H,W,1]) -> composite [N,H,W,3] in [0,1]."""
    policy, size = papers.get(paper).size_policy

    def serve(image, mask):
        mask = tf.cast(mask > 0.5, tf.float32)
        # Nothing under the hole reaches the network (see inpainters._check).
        image = masks.blank_hole(image, mask)
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        if policy == "resize":
            small = tf.image.resize(image, [size, size], antialias=True)
            small_mask = tf.image.resize(mask, [size, size], method="nearest")
            composite = task.predict({"image": small * 2.0 - 1.0, "mask": small_mask})["composite"]
            completed = tf.image.resize((composite + 1.0) / 2.0, [height, width])
        else:
            pad_h, pad_w = (-height) % size, (-width) % size
            padding = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
            padded = tf.pad(image, padding, mode="REFLECT")
            composite = task.predict({"image": padded * 2.0 - 1.0,
                                      "mask": tf.pad(mask, padding, mode="REFLECT")})["composite"]
            completed = (composite[:, :height, :width] + 1.0) / 2.0
        return mask * tf.clip_by_value(completed, 0.0, 1.0) + (1.0 - mask) * image

    return serve


def export(workdir: str, output: str) -> str:
    """Writes the SavedModel of the run in `workdir` to `output`; returns the paper's name."""
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise UserError(f"--output {output!r} exists and is not an empty folder: give a new "
                        "folder for the SavedModel.")
    paper, task = inpainters.load_task(workdir)
    archive = keras.export.ExportArchive()
    for name, item in task.checkpoint_items().items():
        if isinstance(item, keras.Model):
            archive.track(item)
    archive.add_endpoint(
        name="serve", fn=serving_function(paper, task),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
                         tf.TensorSpec([None, None, None, 1], tf.float32, name="mask")])
    archive.write_out(output, verbose=False)
    with open(os.path.join(output, inpainters.EXPORT_INFO), "w") as f:
        json.dump({"paper": paper,
                   "postprocess_outside_graph": papers.get(paper).postprocess is not None}, f)
    return paper


flags.DEFINE_string("workdir", None, "Work directory of a training run (its latest checkpoint "
                    "is exported).")
flags.DEFINE_string("output", None, "Folder to write the SavedModel to.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS.workdir or not flags.FLAGS.output:
        raise app.UsageError("--workdir and --output are required.")
    with cli.user_errors():
        paper = export(flags.FLAGS.workdir, flags.FLAGS.output)
    print(f"Exported {paper} from {flags.FLAGS.workdir} to {flags.FLAGS.output}; load it with "
          f"tf.saved_model.load({flags.FLAGS.output!r}).serve(image, mask).")
    blend = papers.get(paper).postprocess
    if blend is not None:
        print(f"Note: {paper}'s post-processing is not in the graph; serve() returns the "
              "network's composite. inpaint --method=saved_model:PATH applies it; other callers "
              f"use {blend.__module__}.{blend.__name__}.")
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
