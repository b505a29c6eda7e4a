r"""How deep the training strokes' holes are against the NVIDIA masks', by hole-area bin.

  python benchmarks/mask_depth.py --masks=../shared/data/masks/nvidia_irregular \
      --image_size=128 --count=300

A hole's depth is the mean distance of its pixels to the nearest known pixel
(`common.masks.hole_depth`): how far into the hole a fill must reach, where a
diffusion such as biharmonic is hard to beat when the hole is thin. For each
10 % hole-area bin it prints the mean depth of `--count` masks of
`strokes_by_area_mask` (strokes of one width range) and of its depth-matched
variant (`--mask_type=matched_strokes`), seeds 0..count-1, and of every mask
of the --masks folder, all at --image_size. The last line printed is one JSON
object.
"""

import json

import numpy as np
import tensorflow as tf
from absl import flags

from common import cli
from common import evaluation
from common import markdown
from common import masks

flags.DEFINE_string("masks", None, "Folder of evaluation masks (white = hole), e.g. the "
                    "NVIDIA irregular masks; empty: the strokes only.")
flags.DEFINE_integer("image_size", 128, "Side the masks are drawn at or resized to.",
                     lower_bound=16)
flags.DEFINE_integer("count", 300, "Stroke masks drawn of each kind.", lower_bound=6)
FLAGS = flags.FLAGS


def depth_by_bin(mask_list) -> list[float]:
    """Mean hole depth in each of the six 10 % hole-area bins (NaN for an empty bin)."""
    depths = {name: [] for name in bin_names()}
    for mask in mask_list:
        holes = np.asarray(mask)[..., 0] > 0.5
        name = evaluation.hole_area_bin(holes)
        if name in depths:  # not above the last bin
            depths[name].append(masks.hole_depth(holes))
    return [float(np.mean(values)) if values else float("nan") for values in depths.values()]


def bin_names() -> list[str]:
    return [f"{low}-{high}%" for low, high in evaluation.HOLE_AREA_BINS]


def stroke_masks(count: int, image_size: int, depth_matched: bool):
    for index in range(count):
        yield masks.strokes_by_area_mask(tf.constant([index, 0]), image_size,
                                         depth_matched=depth_matched).numpy()


def folder_masks(folder: str, image_size: int):
    loaded = masks.load_mask_folder(folder, invert_flag=None)
    for index in range(len(loaded.files)):
        yield loaded.load(index, image_size).numpy()


def main(argv):
    del argv
    size = FLAGS.image_size
    rows = {
        "strokes (`strokes`)": depth_by_bin(stroke_masks(FLAGS.count, size, False)),
        "depth-matched strokes (`matched_strokes`)": depth_by_bin(
            stroke_masks(FLAGS.count, size, True)),
    }
    if FLAGS.masks:
        rows[f"{FLAGS.masks} (evaluation)"] = depth_by_bin(folder_masks(FLAGS.masks, size))
    print(markdown.table(["hole area"] + bin_names(),
                         [[name] + [f"{v:.1f} px" for v in values]
                          for name, values in rows.items()]))
    print(json.dumps({"image_size": size, "count": FLAGS.count, "depth_by_bin": rows}))


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
