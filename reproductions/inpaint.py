r"""Inpaints one photo: `inpaint --method=METHOD --image=photo.jpg --mask=mask.png --output=out.png`.

METHOD is a classical baseline (telea, ns, biharmonic, mean_fill), a trained
reproduction PAPER:WORKDIR (e.g. glcic:runs/glcic_places), or
saved_model:PATH. The mask is an image of the photo's size, white = hole.
Any size works; each paper applies its own size policy.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import app
from absl import flags
from PIL import Image

from common import flags as common_flags
from common.errors import UserError
from reproductions import inpainters


def define_flags() -> None:
    """The command's flags; defined only when it runs, so that importing the module
    (tests, other tools) defines none."""
    flags.DEFINE_string("method", None, "telea | ns | biharmonic | mean_fill | PAPER:WORKDIR | "
                        "saved_model:PATH")
    flags.DEFINE_string("image", None, "The photo (JPEG, PNG, BMP or WEBP; grayscale and RGBA "
                        "are converted to RGB).")
    flags.DEFINE_string("mask", None, "The mask image, same size as the photo, white = hole.")
    flags.DEFINE_string("output", None, "Where to write the completed image (PNG or JPEG).")
    flags.DEFINE_boolean("postprocess", True, "GLCIC: fast marching + Poisson blending, the "
                         "paper's post-processing (the official inpaint.lua never runs it).")
    flags.DEFINE_boolean("overwrite", False, "Replace --output if it exists (never the photo or "
                         "the mask themselves).")
    flags.DEFINE_float("max_megapixels", inpainters.MAX_MEGAPIXELS, "GLCIC and DMFN: photos "
                       "above this size are completed in a window around the hole (the hole's "
                       "box with 128 px of context), which must itself fit.")
    flags.DEFINE_enum("fit", "pad", ["pad", "resize"], "GLCIC and DMFN: reflect-pad the photo "
                      "to a multiple of 4 (pad), or resize it to the nearest one and back "
                      "(resize, as GLCIC's inpaint.lua).")


def read_image(path: str) -> np.ndarray:
    """An RGB photo as float32 in [0, 1]."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.float32) / 255.0
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--image {path!r} does not exist.") from error
    except OSError as error:
        raise UserError(f"--image {path!r} is not a readable image: {error}") from error


def read_mask(path: str, size: tuple[int, int]) -> np.ndarray:
    """A white-is-hole mask image as bool HxW; checked against the photo's size."""
    try:
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L")) > 127
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--mask {path!r} does not exist.") from error
    except OSError as error:
        raise UserError(f"--mask {path!r} is not a readable image: {error}") from error
    if mask.shape != size:
        raise UserError(f"--mask {path!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but the image "
                         f"is {size[1]}x{size[0]}: the mask must have the photo's size.")
    if not mask.any():
        raise UserError(f"--mask {path!r} has no hole: mark the pixels to fill in white.")
    if mask.all():
        raise UserError(f"--mask {path!r} is all hole: nothing is left to fill it from.")
    return mask


def check_output(output_path: str, inputs: tuple[str, ...], overwrite: bool) -> None:
    """Refuses, before any work, an output that cannot be written or would destroy a file."""
    real = os.path.realpath(output_path)
    for path in inputs:
        if os.path.exists(path) and os.path.realpath(path) == real:
            raise UserError(f"--output {output_path!r} is one of the input files; write the "
                            "result elsewhere.")
    if os.path.exists(output_path) and not overwrite:
        raise UserError(f"--output {output_path!r} exists; pass --overwrite to replace it.")
    folder = os.path.dirname(output_path) or "."
    if not os.path.isdir(folder):
        raise UserError(f"--output: the folder {folder!r} does not exist.")
    extension = os.path.splitext(output_path)[1].lower()
    if extension not in Image.registered_extensions():
        raise UserError(f"--output {output_path!r}: unknown image extension {extension!r}; use "
                        ".png or .jpg.")


def inpaint_file(method: str, image_path: str, mask_path: str, output_path: str,
                 postprocess: bool = True, fit: str = "pad", overwrite: bool = False,
                 max_megapixels: float = inpainters.MAX_MEGAPIXELS) -> np.ndarray:
    """Reads, inpaints and writes one photo; returns the completed image in [0, 1]."""
    check_output(output_path, (image_path, mask_path), overwrite)
    image = read_image(image_path)
    mask = read_mask(mask_path, image.shape[:2])
    inpainter = inpainters.load(method, postprocess=postprocess, fit=fit,
                                max_megapixels=max_megapixels)
    completed = inpainter(image, mask)
    warning = inpainters.unfilled_warning(method, inpainter, mask)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    Image.fromarray(np.round(np.clip(completed, 0, 1) * 255).astype(np.uint8)).save(output_path)
    return completed


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for name in ("method", "image", "mask", "output"):
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    with common_flags.user_errors():
        inpaint_file(flags.FLAGS.method, flags.FLAGS.image, flags.FLAGS.mask, flags.FLAGS.output,
                     flags.FLAGS.postprocess, flags.FLAGS.fit, flags.FLAGS.overwrite,
                     flags.FLAGS.max_megapixels)
    print(f"Wrote {flags.FLAGS.output}")
    return 0


def run() -> None:
    """Console-script entry point (`inpaint`)."""
    define_flags()
    common_flags.run_app(main, __doc__, __name__)


if __name__ == "__main__":
    run()
