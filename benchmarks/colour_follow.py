r"""How much of the picture's colour a method's fill follows.

  python benchmarks/colour_follow.py --methods=biharmonic,dmfn:runs/faces_study/dmfn_irregular \
      --images=runs/faces_study/faces_heldout --masks=../shared/data/masks/nvidia_irregular \
      --image_size=128 --limit=40

Each image (loaded as the evaluation loads it) gets its hole as the evaluation
pairs them (`common.evaluation.mask_for`). It is clipped to [0.15, 0.85], so
that a shift stays inside [0, 1], and filled twice: as it is, and with --shift
added to one colour channel everywhere. The fill's mean change in that channel
over the hole, divided by --shift, is the share of the colour change it
follows: 1 for a fill computed from the known pixels (biharmonic, telea, the
mean fill), 0 for one that ignores them and paints the same colour whatever
surrounds the hole. A network that normalises away each picture's colour
(instance normalisation without affine parameters, as in DMFN's generator)
follows less of it until it has learned to carry the colour through. One
row per method, a column per channel; the last line printed is one JSON object.
"""

import json
import os
import time

import numpy as np
from absl import flags
from absl import logging

from common import cli
from common import evaluation
from common import image_files
from common import markdown
from common.errors import UserError
from reproductions import inpainters

flags.DEFINE_list("methods", ["biharmonic"], "Methods, as inpaint-eval's --method takes "
                  "them: telea, ns, biharmonic, mean_fill, PAPER:WORKDIR or saved_model:PATH.")
flags.DEFINE_string("images", None, "Folder of photos.")
flags.DEFINE_string("masks", "irregular-medium", "Mask folder (white = hole) or one of "
                    f"{', '.join(evaluation.MASK_SOURCES)}.")
flags.DEFINE_integer("image_size", 128, "Side the images are cropped and resized to.",
                     lower_bound=evaluation.MIN_IMAGE_SIZE)
flags.DEFINE_integer("limit", 40, "Images used (the first, sorted by path).", lower_bound=1)
flags.DEFINE_float("shift", 0.1, "Colour change added to the picture, in [0, 1] units.",
                   lower_bound=0.01, upper_bound=0.15)
flags.mark_flag_as_required("images")
FLAGS = flags.FLAGS

CHANNELS = ("R", "G", "B")
# The picture is clipped into [LOW, 1 - LOW], so that adding a shift up to LOW
# never clips and the change given to the fill is exactly the shift.
LOW = 0.15


def follow_ratios(inpainter, image: np.ndarray, hole: np.ndarray, shift: float) -> np.ndarray:
    """[3]: the share of a `shift` added to each channel that the fill follows.

    Args:
      inpainter: callable(image, mask) -> composite (reproductions.inpainters).
      image: float32 [H, W, 3] in [0, 1].
      hole: bool [H, W], True = hole; not empty.
      shift: at most LOW.
    """
    base = np.clip(image, LOW, 1 - LOW).astype(np.float32)
    filled = inpainter(base, hole)[hole]
    ratios = np.zeros(3)
    for channel in range(3):
        shifted = base.copy()
        shifted[..., channel] += shift
        ratios[channel] = (inpainter(shifted, hole)[hole][:, channel]
                           - filled[:, channel]).mean() / shift
    return ratios


def method_ratios(method: str, files: list[str], names: list[str], masks_source: str,
                  image_size: int, shift: float) -> np.ndarray:
    """[3]: follow_ratios of `method` averaged over the images whose hole is not empty."""
    inpainter = inpainters.load(method, postprocess=False)
    mask_files = (evaluation.list_mask_files(masks_source)
                  if masks_source not in evaluation.MASK_SOURCES else None)
    ratios, started = [], time.time()
    for index, (path, name) in enumerate(zip(files, names), start=1):
        hole = evaluation.mask_for(name, masks_source, image_size, mask_files)
        if hole.any():
            image = evaluation.load_image(path, image_size)
            ratios.append(follow_ratios(inpainter, image, hole, shift))
        if index % 10 == 0 or index == len(files):  # four fills an image: say how far
            logging.info("%s: %d/%d images, %.1f s", method, index, len(files),
                         time.time() - started)
    if not ratios:
        raise UserError(f"--masks {masks_source!r} gave no image a hole.")
    return np.mean(ratios, axis=0)


def main(argv):
    del argv
    with cli.user_errors():
        if not os.path.isdir(FLAGS.images):
            raise UserError(f"--images {FLAGS.images!r} is not a folder of photos.")
        files = sorted(image_files.find_image_files(FLAGS.images))[:FLAGS.limit]
        if not files:
            raise UserError(f"--images {FLAGS.images!r} holds no image.")
        names = evaluation.output_names(files, FLAGS.images)
        rows = {method: method_ratios(method, files, names, FLAGS.masks, FLAGS.image_size,
                                      FLAGS.shift)
                for method in FLAGS.methods}
    print(markdown.table(["method", *CHANNELS],
                         [[m] + [f"{r:.2f}" for r in v] for m, v in rows.items()]))
    print(json.dumps({"images": len(files), "masks": FLAGS.masks, "shift": FLAGS.shift,
                      "follow": {m: [round(float(r), 4) for r in v] for m, v in rows.items()}}))


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
