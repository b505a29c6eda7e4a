"""Finding and checking image files on disk, before anything reaches tf.data.

A folder of user photos is messy: some files are corrupt, some are grayscale
or RGBA, some are tiny. We check every file once, up front, so that a bad file
is reported by name instead of failing (or silently vanishing) deep inside a
training run. Colour-mode and size are fixed later, in the graph.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
from typing import Iterator, Sequence

import numpy as np
from absl import logging
from PIL import Image
from PIL import ImageOps

from common.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# PIL format names that tf.io.decode_image can decode.
_DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "WEBP", "MPO"}


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The usable images of a folder and the files that were skipped."""

    files: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason)


def iter_image_files(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Iterator[str]:
    """Yields the paths of files under `folder` (recursively) with an image extension,
    walking lazily, so that `has_image_file` can stop at the first one."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Image folder {folder!r} does not exist or is not a folder.")
    extensions = tuple(e.lower() for e in extensions)
    # Symbolic links to folders are followed, each real folder once: a link
    # back to a parent would otherwise list the same files again and again.
    visited = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            dirs.clear()
            continue
        visited.add(real)
        dirs.sort()
        yield from (os.path.join(root, n) for n in sorted(names) if n.lower().endswith(extensions))


def find_image_files(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Returns the sorted paths of files under `folder` (recursively) with an image extension."""
    return sorted(iter_image_files(folder, extensions))


def has_image_file(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
    """Whether `folder` holds at least one such file; a start-up check that does not list
    a large folder in full (the pipeline lists it once, later)."""
    return next(iter_image_files(folder, extensions), None) is not None


def check_image_file(path: str) -> str | None:
    """Returns None when `path` is a decodable image, else a short reason why it is not.

    Decodes the whole file (not only the header), so truncated JPEGs are caught.
    """
    try:
        with Image.open(path) as image:
            image_format = image.format
            animated = getattr(image, "is_animated", False)
            image.load()
    except Exception as error:  # PIL raises many types for broken files.
        return f"unreadable ({type(error).__name__}: {error})"
    if image_format not in _DECODABLE_FORMATS:
        return f"unsupported format {image_format}"
    if animated and image_format == "WEBP":
        # TensorFlow's decoder rejects animated WebP; better to say so up front.
        return "animated WebP is not supported"
    return None


def check_image_header(path: str) -> str | None:
    """Like `check_image_file`, from the header (and PNG chunk checksums) only: cheap
    enough for every file of a large folder, but blind to a truncated JPEG."""
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.verify()
    except Exception as error:  # PIL raises many types for broken files.
        return f"unreadable ({type(error).__name__}: {error})"
    if image_format not in _DECODABLE_FORMATS:
        return f"in a format TensorFlow does not decode ({image_format})"
    return None


def scan_image_folder(folder: str, num_workers: int | None = None) -> ImageFolder:
    """Lists and checks the images of `folder`; logs skipped files once, by name.

    Raises:
      FileNotFoundError: if the folder does not exist.
      ValueError: if it holds no usable image.
    """
    candidates = find_image_files(folder)
    workers = num_workers or min(16, (os.cpu_count() or 1) * 4)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reasons = list(pool.map(check_image_file, candidates))
    files = tuple(p for p, r in zip(candidates, reasons) if r is None)
    skipped = tuple((p, r) for p, r in zip(candidates, reasons) if r is not None)
    if skipped:
        logging.warning(
            "Skipping %d unreadable file(s) of %d in %s:\n  %s",
            len(skipped), len(candidates), folder,
            "\n  ".join(f"{p}: {r}" for p, r in skipped))
    if not files:
        raise UserError(
            f"No usable image in {folder!r}: expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
            f" ({len(candidates)} candidate(s), {len(skipped)} unreadable).")
    return ImageFolder(files=files, skipped=skipped)


# --------------------------------------------------------------------------
# Reading one photo or mask as a person sees it, and writing a result.
# --------------------------------------------------------------------------

# Extensions a result may be written to without changing a pixel (WebP in its
# lossless mode), and those that change pixels (JPEG), with PIL's save options.
LOSSLESS_OUTPUTS = {".png": {}, ".bmp": {}, ".tif": {}, ".tiff": {}, ".webp": {"lossless": True}}
LOSSY_OUTPUTS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}}


def open_image(path: str, what: str, data: bytes | None = None) -> Image.Image:
    """The fully decoded PIL image of `path` (or of `data`, the bytes of an upload
    that `path` names), or a UserError naming the file."""
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as image:
            image.load()  # decodes everything now: truncated files fail here
            return image.copy()
    except FileNotFoundError as error:
        raise UserError(f"{what} {path!r} does not exist.") from error
    except Image.UnidentifiedImageError as error:
        raise UserError(f"Cannot read {what} {path!r}: not an image file (expected JPEG, PNG, "
                        "BMP or WEBP).") from error
    except Exception as error:  # PIL raises many types for broken files
        raise UserError(f"Cannot read {what} {path!r}: {type(error).__name__}: {error}") from error


def to_8bit(image: Image.Image, mode: str) -> Image.Image:
    """`image` converted to 8-bit `mode` ("RGB" or "L"), alpha dropped.

    16-bit grayscale is rescaled (PIL's own conversion clips it at 255, which
    turns a 16-bit photo white); grayscale with alpha keeps its gray.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(image, np.float64) / 65535.0 * 255.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, np.float64) * (255.0 if np.max(image) <= 1.0 else 1.0)
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    elif image.mode == "P":
        image = image.convert("RGBA")  # palette transparency becomes alpha, then dropped
    elif image.mode == "LA":
        image = image.convert("L")
    # PIL's RGBA -> RGB drops alpha without compositing, as the training
    # pipeline (common.data.decode_rgb) does.
    return image.convert(mode)


def as_shown(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says a viewer shows it (a phone's
    portrait is stored sideways with orientation 6); unchanged without one."""
    return ImageOps.exif_transpose(image)


def read_photo(path: str, what: str = "--image", data: bytes | None = None) -> np.ndarray:
    """A photo as float32 HxWx3 RGB in [0, 1], as a viewer shows it: EXIF
    orientation applied, 16-bit and grayscale (with or without alpha) converted.
    `data`: the file's bytes, already read (an upload named `path`)."""
    image = as_shown(open_image(path, what, data))
    return np.asarray(to_8bit(image, "RGB"), np.float32) / 255.0


def read_mask_file(path: str, what: str = "--mask", data: bytes | None = None) -> np.ndarray:
    """A white-is-hole mask image as bool HxW, as a viewer shows it.

    A mask with transparent pixels is refused: transparency means opposite
    things in the two usual ways of making one (erased pixels are the hole;
    strokes painted on a transparent layer are the hole), so it cannot be read
    without a guess. `data`: the file's bytes, already read (an upload).
    """
    image = as_shown(open_image(path, what, data))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") and np.asarray(image.getchannel("A")).min() < 255:
        raise UserError(f"{what} {path!r} has transparent pixels; a mask is read as white = hole, "
                        "black = known, and transparency is ambiguous (erased pixels, or the "
                        "background of painted strokes): flatten it to an opaque white-on-black "
                        "image.")
    return np.asarray(to_8bit(image, "L")) > 127


def check_output_extension(path: str, lossy: bool, what: str = "--output") -> dict:
    """PIL's save options for `path`'s extension; refuses an unknown extension, and a
    lossy one (which changes known pixels) unless `lossy`."""
    extension = os.path.splitext(path)[1].lower()
    if extension in LOSSLESS_OUTPUTS:
        return LOSSLESS_OUTPUTS[extension]
    if extension in LOSSY_OUTPUTS:
        if not lossy:
            raise UserError(f"{what} {path!r}: {extension} is lossy and would change the known "
                            "pixels too; write .png (or .webp, .bmp, .tif), or pass --lossy to "
                            "accept that.")
        return LOSSY_OUTPUTS[extension]
    raise UserError(f"{what} {path!r}: unsupported extension {extension or '(none)'!r}; expected "
                    f"one of {', '.join(LOSSLESS_OUTPUTS)} (lossless) or "
                    f"{', '.join(LOSSY_OUTPUTS)} (with --lossy).")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] as 8-bit levels (rounded, out-of-range values clipped)."""
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def save_rgb(image: np.ndarray, path: str, options: dict) -> None:
    """Writes float32 HxWx3 in [0, 1] as 8-bit RGB with PIL's save `options`."""
    Image.fromarray(to_uint8(image)).save(path, **options)
