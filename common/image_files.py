"""Finding and checking image files on disk, before anything reaches tf.data.

A folder of user photos is messy: some files are corrupt, some are grayscale
or RGBA, some are tiny. We check every file once, up front, so that a bad file
is reported by name instead of failing (or silently vanishing) deep inside a
training run. Colour-mode and size are fixed later, in the graph.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Iterator, Sequence

from absl import logging
from PIL import Image

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
