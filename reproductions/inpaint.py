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

from common import cli
from common import image_files
from common.errors import UserError
from reproductions import inpainters

# Above this share of hole pixels a mask is probably inverted (black = hole); the
# folder loaders refuse such masks (common.masks.load_mask_folder), one photo warns.
INVERTED_COVERAGE = 0.5


def define_flags() -> None:
    """The command's flags; defined only when it runs, so that importing the module
    (tests, other tools) defines none."""
    flags.DEFINE_string("method", None, "telea | ns | biharmonic | mean_fill | PAPER:WORKDIR | "
                        "PAPER:WORKDIR@STEP (a checkpoint's step) | saved_model:PATH")
    flags.DEFINE_string("image", None, "The photo (JPEG, PNG, BMP or WEBP; grayscale, 16-bit "
                        "and RGBA are converted to RGB), read as shown: EXIF orientation applied.")
    flags.DEFINE_string("mask", None, "The mask image, the photo's size as shown, white = hole, "
                        "opaque (a mask with transparency is refused).")
    flags.DEFINE_string("output", None, "Where to write the completed image: .png, .webp "
                        "(lossless), .bmp or .tif keep every known pixel; .jpg needs --lossy.")
    flags.DEFINE_boolean("lossy", False, "Allow a lossy --output (.jpg), which changes known "
                         "pixels by a few levels.")
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
    """An RGB photo as float32 in [0, 1], as a viewer shows it (EXIF orientation applied)."""
    return image_files.read_photo(path, "--image")


def check_mask(mask: np.ndarray, size: tuple[int, int], label: str) -> np.ndarray:
    """`mask` (bool HxW) if it has the photo's shown `size`, a hole and known pixels;
    else a UserError starting with `label` (e.g. "--mask 'm.png'")."""
    if mask.shape != size:
        raise UserError(f"{label} is {mask.shape[1]}x{mask.shape[0]} (WxH) but the image "
                         f"is {size[1]}x{size[0]} as shown (after its EXIF orientation): the "
                         "mask must have the photo's size.")
    if not mask.any():
        raise UserError(f"{label} has no hole: mark the pixels to fill in white.")
    if mask.all():
        raise UserError(f"{label} is all hole: nothing is left to fill it from.")
    return mask


def read_mask(path: str, size: tuple[int, int]) -> np.ndarray:
    """A white-is-hole mask image as bool HxW; checked against the photo's shown size."""
    return check_mask(image_files.read_mask_file(path, "--mask"), size, f"--mask {path!r}")


def inverted_mask_warning(path: str, mask: np.ndarray) -> str:
    """A warning when the hole covers more than half the photo, as an inverted mask
    (black = hole) does; "" otherwise."""
    coverage = float(mask.mean())
    if coverage <= INVERTED_COVERAGE:
        return ""
    return (f"the hole of --mask {path!r} covers {coverage:.0%} of the photo. White is the "
            "hole; if your mask marks the hole in black, invert it.")


def check_output(output_path: str, inputs: tuple[str, ...], overwrite: bool,
                 lossy: bool = False) -> dict:
    """Refuses, before any work, an output that cannot be written, would destroy a file, or
    would change known pixels unasked; returns PIL's save options for it."""
    real = os.path.realpath(output_path)
    for path in inputs:
        if os.path.exists(path) and os.path.realpath(path) == real:
            raise UserError(f"--output {output_path!r} is one of the input files; write the "
                            "result elsewhere.")
    options = image_files.check_output_extension(output_path, lossy)
    if os.path.exists(output_path) and not overwrite:
        raise UserError(f"--output {output_path!r} exists; pass --overwrite to replace it.")
    folder = os.path.dirname(output_path) or "."
    if not os.path.isdir(folder):
        raise UserError(f"--output: the folder {folder!r} does not exist.")
    return options


def inpaint_file(method: str, image_path: str, mask_path: str, output_path: str,
                 postprocess: bool = True, fit: str = "pad", overwrite: bool = False,
                 max_megapixels: float = inpainters.MAX_MEGAPIXELS,
                 lossy: bool = False) -> np.ndarray:
    """Reads, inpaints and writes one photo; returns the completed image in [0, 1]."""
    save_options = check_output(output_path, (image_path, mask_path), overwrite, lossy)
    image = read_image(image_path)
    mask = read_mask(mask_path, image.shape[:2])
    warning = inverted_mask_warning(mask_path, mask)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    inpainter = inpainters.load(method, postprocess=postprocess, fit=fit,
                                max_megapixels=max_megapixels)
    completed = inpainter(image, mask)
    warning = inpainters.unfilled_warning(method, inpainter, mask)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    image_files.save_rgb(completed, output_path, save_options)
    return completed


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for name in ("method", "image", "mask", "output"):
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    with cli.user_errors():
        inpaint_file(flags.FLAGS.method, flags.FLAGS.image, flags.FLAGS.mask, flags.FLAGS.output,
                     flags.FLAGS.postprocess, flags.FLAGS.fit, flags.FLAGS.overwrite,
                     flags.FLAGS.max_megapixels, flags.FLAGS.lossy)
    print(f"Wrote {flags.FLAGS.output}")
    return 0


def run() -> None:
    """Console-script entry point (`inpaint`)."""
    define_flags()
    cli.run_app(main, __doc__, __name__)


if __name__ == "__main__":
    run()
