r"""The evaluation protocol shared by every method:

  inpaint-eval --method=METHOD --images=DIR --image_size=N --output=DIR --masks=SOURCE

SOURCE is a folder of mask images or one of center, center-overlap, bbox,
bbox-large, irregular-thin, irregular-medium, irregular-thick. center-overlap
is the hole Context Encoders and Structural Inpainting train on (the centre
square less a 4 px ring at 128): use it to score them on their own mask;
center blanks that ring too, a harder task for them. bbox-large draws GLCIC's
and DMFN's training holes (sides 3/8 to 1/2 of the image); bbox, sides from 1/4.

Images are centre-cropped to a square and resized to N; each image meets the
same mask whatever the method (paired by its name). Writes DIR/metrics.json
(count, overall metrics, metrics per hole-area bin, per image) and, for every
image, NAME_target.png, NAME_mask.png, NAME_input.png and NAME_composite.png.
The metrics are defined in common/evaluation.py and in docs/evaluation.md.

LPIPS (--lpips_net=alex|vgg), FID and KID are added when their weight files
are found (--lpips_backbone_weights, --lpips_linear_weights, --fid_weights,
or the --weights_cache folder, or downloaded there on first use); a missing
file skips its metric with one log line. --noperceptual_metrics skips all three.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

from common import cli
from common import evaluation
from common import perceptual_metrics
from common.errors import UserError
from reproductions import inpainters

flags.DEFINE_string("method", None, "telea | ns | biharmonic | mean_fill | PAPER:WORKDIR | "
                    "PAPER:WORKDIR@STEP (a checkpoint's step) | saved_model:PATH")
flags.DEFINE_string("images", None, "Folder of photos (searched recursively; any size).")
flags.DEFINE_string("masks", "center", "A folder of mask images (white = hole) or one of "
                    f"{', '.join(evaluation.MASK_SOURCES)}.")
flags.DEFINE_integer("image_size", 256, "Side the images are cropped and resized to.")
flags.DEFINE_string("output", None, "Folder for metrics.json and the images; a folder that "
                    "is not empty needs --overwrite.")
flags.DEFINE_boolean("overwrite", False, "Write into a --output that is not empty, replacing "
                     "the metrics.json and images of the evaluation there.")
flags.DEFINE_integer("limit", None, "Evaluate only the first N images (N >= 1).")
flags.DEFINE_boolean("postprocess", True, "GLCIC: fast marching + Poisson blending (the "
                     "paper's; the official inpaint.lua never runs it).")
flags.DEFINE_enum("fit", "pad", ["pad", "resize"], "GLCIC and DMFN: reflect-pad to a multiple "
                  "of 4, or resize to the nearest one and back (GLCIC's inpaint.lua).")
perceptual_metrics.define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    for name in ("method", "images", "output"):
        if not values[name].value:
            raise app.UsageError(f"--{name} is required.")
    with cli.user_errors():
        if values.limit is not None and values.limit < 1:
            raise UserError(f"--limit must be at least 1, got {values.limit}.")
        if (os.path.isdir(values.output) and os.listdir(values.output)
                and not values.overwrite):
            raise UserError(f"--output {values.output!r} is not empty; pass --overwrite to "
                            "replace the evaluation there, or give a new folder.")
        if os.path.exists(values.output) and not os.path.isdir(values.output):
            raise UserError(f"--output {values.output!r} is a file; give a folder.")
        if values.image_size < 16:
            raise UserError(f"--image_size must be at least 16 (SSIM's window is 11 px), got "
                             f"{values.image_size}.")
        inpainter = inpainters.load(values.method, postprocess=values.postprocess, fit=values.fit)
        networks = perceptual_metrics.load_networks(perceptual_metrics.config_from_flags(values))
        results = evaluation.evaluate(inpainter, values.images, values.masks, values.image_size,
                                      values.output, limit=values.limit, method=values.method,
                                      options={"postprocess": values.postprocess,
                                               "fit": values.fit},
                                      perceptual=networks)
    if "fid" in results["overall"]:
        print(f"FID and KID rest on {results['count']} images: FID is biased upwards at small "
              "sets; below a few thousand images, compare KID.")
    print(json.dumps({"method": values.method, "count": results["count"],
                      **results["overall"]}))
    return 0


def run() -> None:
    """Console-script entry point (`inpaint-eval`)."""
    cli.run_app(main, __doc__, __name__)


if __name__ == "__main__":
    run()
