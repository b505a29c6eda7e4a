"""The evaluation protocol shared by every method of the suite.

Any *inpainter* can be evaluated: a callable `inpainter(image, mask) ->
composite` taking a float32 HxWx3 RGB image in [0, 1] (hole pixels may hold
anything, so a method must not read them), a bool HxW mask (True = hole), and
returning float32 HxWx3 in [0, 1] with every known pixel equal to the input.
`common.baselines` holds classical ones; a trained network becomes one by
wrapping its forward pass.

Images. Each file of a folder (searched recursively; unreadable files are
skipped and named) is centre-cropped to a square and resized to
`image_size` (PIL bicubic), as `load_image` does.

Masks. `mask_for(name, source, image_size)` depends only on the image's name,
the source and the size, through SHA-256 of the name (not Python's
per-process randomised `hash`), so every method, run, and machine meets the
same mask on the same image. Sources: "center" (the centred square of side
image_size // 2), "center-overlap" (that square less a ring of image_size // 32
px: the hole Context Encoders and Structural Inpainting blank, 56x56 at 128,
whose ring they see and predict; `common.masks.center_mask`), "bbox" (one
random rectangle, sides 1/4 to 1/2 of the image), "bbox-large" (sides 3/8 to
1/2: the holes GLCIC and DMFN train on), "irregular-thin",
"irregular-medium", "irregular-thick" (`common.masks.irregular_mask` brush
strokes), or a folder of mask images (white = hole; one file per image,
picked by the name).

Metrics, per image, on the composite (the output pasted into the known
pixels, what a user sees) against the target, both in [0, 1] (no 8-bit
rounding), computed by `common.metrics.inpainting_metrics`:

  psnr       whole image: 10 log10(1 / MSE) in dB, MSE over all pixels and
             channels; capped at 100 dB for identical images.
  ssim       whole image: standard SSIM (11x11 Gaussian window, sigma 1.5,
             data range 1), averaged over channels and valid windows.
  l1, l2     whole image: mean absolute / squared error over all pixels and
             channels.
  l1_hole, l2_hole, psnr_hole, ssim_hole
             the same over hole pixels (and channels) only; see
             `common.metrics.ssim` for how windows are assigned to the hole.
             None for an image whose (resized) mask has no hole.

Because known pixels are exact, whole-image errors are the hole errors
scaled by the hole area: l1 = l1_hole * hole_area.

Results. `evaluate` writes, per image, NAME_target.png, NAME_mask.png (white
= hole), NAME_input.png (hole shown white) and NAME_composite.png, and
`metrics.json` with the means over images, overall and per hole-area bin
(`hole_area_bin`). Means skip None values.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tqdm
from absl import logging
from PIL import Image

from common import atomic
from common import image_files
from common import markdown
from common import masks as common_masks
from common import metrics as common_metrics
from common import perceptual_metrics
from common.errors import UserError

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]

MASK_SOURCES = ("center", "center-overlap", "bbox", "bbox-large", "irregular-thin",
                "irregular-medium", "irregular-thick")

# Hole-area bins in percent of the image, those of the NVIDIA irregular mask
# test set (Liu et al. 2018). Coverage on a boundary goes to the higher bin,
# except exactly 60 %, which closes the last bin; above 60 % is "60-100%".
HOLE_AREA_BINS = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60))
OVER_LAST_BIN = "60-100%"

# The metrics averaged in "overall" and "by_hole_area", and the table columns.
SUMMARY_METRICS = ("psnr", "ssim", "l1_hole", "l2_hole", "l1")
# Per-image metrics stored in "per_image".
PER_IMAGE_METRICS = ("psnr", "ssim", "l1", "l2", "psnr_hole", "ssim_hole", "l1_hole", "l2_hole")

# SSIM's 11x11 window must fit, and the "bbox" source's smallest side
# (image_size // 4) must be at least a few pixels.
MIN_IMAGE_SIZE = 16


# --------------------------------------------------------------------------
# Reading images and masks.
# --------------------------------------------------------------------------

def _check_image_size(image_size) -> int:
    if (not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool)
            or image_size < MIN_IMAGE_SIZE):
        raise UserError(f"image_size must be an int >= {MIN_IMAGE_SIZE}, got {image_size!r}.")
    return int(image_size)


def load_image(path: str, image_size: int) -> np.ndarray:
    """Reads an image file as float32 [S, S, 3] RGB in [0, 1].

    JPEG, PNG, BMP and WebP; grayscale is replicated and alpha dropped. The
    largest centred square is cut out and resized to `image_size` with PIL's
    bicubic filter (antialiased when shrinking). EXIF orientation is ignored,
    as in the training pipeline, so both see the same pixels.

    Raises:
      ValueError: naming the file if it cannot be decoded.
    """
    image_size = _check_image_size(image_size)
    image = image_files.to_8bit(image_files.open_image(path, "image"), "RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != image_size:
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(image, np.float32) / 255.0


def load_mask(path: str, image_size: int) -> np.ndarray:
    """Reads a mask image (white = hole) as bool [S, S], True = hole.

    Converted to 8-bit gray (PIL's luma), resized to S x S with nearest
    neighbour (stretched, not cropped, like masks in training, so the whole
    pattern is kept), then thresholded at > 127.

    Raises:
      ValueError: naming the file if it cannot be decoded.
    """
    image_size = _check_image_size(image_size)
    gray = image_files.to_8bit(image_files.open_image(path, "mask"), "L")
    if gray.size != (image_size, image_size):
        gray = gray.resize((image_size, image_size), Image.Resampling.NEAREST)
    return np.asarray(gray) > 127


# --------------------------------------------------------------------------
# Masks paired with images by name.
# --------------------------------------------------------------------------

def name_hash(name: str, draw: str) -> int:
    """A 64-bit integer fixed by (`name`, `draw`): the same on every run and machine.

    `draw` names the random choice ("top", "left", ...), so that the choices
    made for one image are independent of each other.
    """
    # surrogateescape: a file name that is not valid UTF-8 keeps its own bytes.
    digest = hashlib.sha256(f"{draw}\0{name}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big")


def _uniform_int(name: str, draw: str, low: int, high: int) -> int:
    """An int in [low, high], both included, fixed by the name (bias < 2**-50)."""
    return low + name_hash(name, draw) % (high - low + 1)


def bbox_for(name: str, image_size: int, source: str = "bbox") -> tuple[int, int, int, int]:
    """(top, left, height, width) of the "bbox" or "bbox-large" hole of image `name`.

    Sides uniform in [image_size // 4, image_size // 2] ("bbox") or in
    [3 * image_size // 8, image_size // 2] ("bbox-large": GLCIC's holes, 96-128
    px at 256, and DMFN's half-side box shrunk by up to 1/16 of the side at
    each end), each drawn on its own; position uniform inside the image.
    """
    low, high = (3 * image_size // 8 if source == "bbox-large" else image_size // 4,
                 image_size // 2)
    height = _uniform_int(name, "bbox-height", low, high)
    width = _uniform_int(name, "bbox-width", low, high)
    top = _uniform_int(name, "bbox-top", 0, image_size - height)
    left = _uniform_int(name, "bbox-left", 0, image_size - width)
    return top, left, height, width


def _box_mask(box: tuple[int, int, int, int], image_size: int) -> np.ndarray:
    top, left, height, width = box
    mask = np.zeros((image_size, image_size), bool)
    mask[top:top + height, left:left + width] = True
    return mask


def _check_mask_source(source: str) -> None:
    """Raises ValueError unless `source` is a known source name or an existing folder."""
    if source in MASK_SOURCES:
        return
    if not isinstance(source, str) or not os.path.isdir(source):
        raise UserError(f"Unknown mask source {source!r}: expected one of {', '.join(MASK_SOURCES)}"
                         " or an existing folder of mask images (white = hole).")


def list_mask_files(folder: str) -> tuple[str, ...]:
    """The sorted mask images under `folder`, checked (readable, white = hole) by
    `common.masks.load_mask_folder`.

    Raises:
      ValueError: if the folder is missing, empty, or its masks look inverted.
    """
    _check_mask_source(folder)
    return common_masks.load_mask_folder(folder, invert_flag=None).files


def mask_for(name: str, source: str, image_size: int,
             mask_files: Sequence[str] | None = None) -> np.ndarray:
    """The hole mask of image `name`: bool [S, S], True = hole.

    A pure function of (name, source, image_size): see the module docstring.

    Args:
      name: the image's name (evaluate uses the output name, e.g. "kodim01").
      source: one of MASK_SOURCES or a folder of mask images.
      image_size: S.
      mask_files: for a folder source, its files as listed once by the caller
        (e.g. `list_mask_files`), to avoid listing it for every image; they
        are sorted here. None lists the folder.

    Raises:
      ValueError: for an unknown source or a folder without mask images.
    """
    image_size = _check_image_size(image_size)
    _check_mask_source(source)
    if source in ("center", "center-overlap"):
        # The training masks' own definition; Context Encoders' overlapPred
        # keeps a 4 px ring of the centre square visible at 128.
        ring = image_size // 32 if source == "center-overlap" else 0
        return common_masks.center_mask(image_size, image_size // 2, ring).numpy()[..., 0] > 0.5
    if source in ("bbox", "bbox-large"):
        return _box_mask(bbox_for(name, image_size, source), image_size)
    if source.startswith("irregular-") and source in MASK_SOURCES:
        preset = source[len("irregular-"):]
        # Two 31-bit halves: a valid stateless seed whatever its dtype.
        value = name_hash(name, "irregular")
        seed = tf.constant([value >> 33, value & 0x7FFFFFFF], tf.int64)
        return common_masks.irregular_mask(seed, image_size, preset).numpy()[..., 0] > 0.5
    files = sorted(mask_files) if mask_files is not None else image_files.find_image_files(
        source, common_masks.MASK_EXTENSIONS)
    if not files:
        raise UserError(f"No mask image in folder {source!r}: expected files ending in "
                         f"{', '.join(common_masks.MASK_EXTENSIONS)}.")
    return load_mask(files[name_hash(name, "mask-file") % len(files)], image_size)


def hole_area_bin(mask) -> str:
    """The hole-area bin of a mask, e.g. "10-20%".

    Bins are HOLE_AREA_BINS in percent of the image. A coverage exactly on a
    boundary goes to the higher bin (10 % -> "10-20%"), except 60 %, which
    stays in "50-60%"; above 60 % is "60-100%". Computed in integers, so
    boundaries are exact.
    """
    mask = np.asarray(mask, bool)
    holes, total = int(mask.sum()), mask.size
    if total == 0:
        raise ValueError("mask is empty (no pixel).")
    for low, high in HOLE_AREA_BINS:
        last = high == HOLE_AREA_BINS[-1][1]
        if holes * 100 < high * total or (last and holes * 100 == high * total):
            return f"{low}-{high}%"
    return OVER_LAST_BIN


def bin_names() -> list[str]:
    """The hole-area bins in order, "0-10%" ... "50-60%", then the one above the last."""
    return [f"{low}-{high}%" for low, high in HOLE_AREA_BINS] + [OVER_LAST_BIN]


# --------------------------------------------------------------------------
# Running one method.
# --------------------------------------------------------------------------

def output_names(files: Sequence[str], root: str) -> list[str]:
    """Unique output names for image files under `root`.

    The relative path without extension, folders joined by "__" (a top-level
    "kodim01.png" is "kodim01", "sub/a.jpg" is "sub__a"). Files differing only
    by extension get it appended ("a_jpg", "a_png"); any remaining clash, a
    numeric suffix.
    """
    def stem(path):
        relative = os.path.relpath(path, root)
        return os.path.splitext(relative)[0].replace(os.sep, "__")

    names = [stem(p) for p in files]
    repeated = {n for n in names if names.count(n) > 1}
    names = [f"{n}_{os.path.splitext(p)[1].lstrip('.').lower()}" if n in repeated else n
             for n, p in zip(names, files)]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}-{count + 1}")
    return unique


def _check_output(result, image: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """The inpainter's result as float32, or a RuntimeError naming the image if it breaks the contract."""
    result = np.asarray(result)
    if result.shape != image.shape:
        raise RuntimeError(f"Inpainter output for image {name!r} has shape {result.shape}, "
                           f"expected {image.shape}.")
    if not np.issubdtype(result.dtype, np.floating):
        raise RuntimeError(f"Inpainter output for image {name!r} has dtype {result.dtype}, "
                           "expected float in [0, 1].")
    known = ~mask
    # Compared in the result's dtype: float32 -> float64 is exact.
    changed = result[known] != image[known]
    if changed.any():
        difference = np.abs(result[known].astype(np.float64) - image[known])
        raise RuntimeError(
            f"Inpainter changed {int(changed.any(axis=-1).sum())} known pixel(s) of image {name!r} "
            f"(max difference {np.nanmax(difference):.3g}); known pixels must be returned unchanged.")
    if not np.all(np.isfinite(result)) or result.min() < 0.0 or result.max() > 1.0:
        raise RuntimeError(f"Inpainter output for image {name!r} is outside [0, 1] or not finite "
                           f"(range [{np.nanmin(result)}, {np.nanmax(result)}]).")
    return result.astype(np.float32)


def image_metrics(composite: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict:
    """PER_IMAGE_METRICS of one image (arrays in [0, 1]) as floats; None where undefined."""
    to_batch = lambda x: tf.constant(x[np.newaxis] * 2.0 - 1.0, tf.float32)  # noqa: E731
    mask_batch = tf.constant(mask[np.newaxis, :, :, np.newaxis], tf.float32)
    values = common_metrics.inpainting_metrics(to_batch(composite), to_batch(target), mask_batch)
    result = {}
    for key in PER_IMAGE_METRICS:
        value = float(values[key])
        # NaN (no hole) is not valid JSON, and would poison the means.
        result[key] = value if np.isfinite(value) else None
    return result


def summarize(records: Sequence[dict], keys: Sequence[str] = SUMMARY_METRICS) -> dict:
    """Means of `keys` over `records`, skipping None; None if a key has no value."""
    summary = {}
    for key in keys:
        values = [r[key] for r in records if r.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
    return summary


def _save_pngs(output_dir: str, name: str, target: np.ndarray, mask: np.ndarray,
               composite: np.ndarray) -> None:
    """Writes NAME_target, NAME_mask (white = hole), NAME_input (hole white) and NAME_composite."""
    shown_input = np.where(mask[..., None], np.float32(1.0), target * ~mask[..., None])
    Image.fromarray(image_files.to_uint8(target)).save(os.path.join(output_dir, f"{name}_target.png"))
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(os.path.join(output_dir, f"{name}_mask.png"))
    Image.fromarray(image_files.to_uint8(shown_input)).save(os.path.join(output_dir, f"{name}_input.png"))
    Image.fromarray(image_files.to_uint8(composite)).save(os.path.join(output_dir, f"{name}_composite.png"))


# What an evaluation writes into its output folder, besides metrics.json.
OUTPUT_SUFFIXES = ("_target.png", "_mask.png", "_input.png", "_composite.png")


def previous_result(output_dir: str, mask_source: str, image_size: int,
                    options: dict) -> dict | None:
    """The metrics.json an earlier evaluation wrote into `output_dir` if it scored with
    these masks, image size and options (what a rerun may reuse instead of scoring
    again), else None."""
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        previous = json.load(f)
    if (previous.get("options") == options and previous.get("masks") == mask_source
            and previous.get("image_size") == image_size):
        return previous
    return None


def clear_previous_evaluation(output_dir: str) -> int:
    """Removes what an earlier evaluation wrote into `output_dir` (metrics.json and the
    per-image PNGs), so that none of its images stays beside new metrics; other files
    are left alone. Returns how many files were removed."""
    if not os.path.isdir(output_dir):
        return 0
    removed = 0
    for name in os.listdir(output_dir):
        if name == "metrics.json" or name.endswith(OUTPUT_SUFFIXES):
            os.remove(os.path.join(output_dir, name))
            removed += 1
    return removed


def _method_name(inpainter) -> str:
    return getattr(inpainter, "__name__", None) or type(inpainter).__name__


def evaluate(inpainter: Inpainter, images_dir: str, mask_source: str, image_size: int,
             output_dir: str, limit: int | None = None, method: str | None = None,
             options: dict | None = None, progress: bool = True,
             perceptual: perceptual_metrics.PerceptualNetworks | None = None) -> dict:
    """Evaluates one inpainter on a folder of images; writes PNGs and metrics.json.

    Args:
      inpainter: callable(image, mask) -> composite (see the module docstring).
        It receives the image with its hole blanked (common.masks.blank_hole),
        so no method can score with pixels it was not given.
      images_dir: folder of images, searched recursively; unreadable files
        are skipped, logged and listed under "skipped".
      mask_source: one of MASK_SOURCES or a folder of mask images.
      image_size: side S of the square images and masks.
      output_dir: created if needed; gets NAME_{target,mask,input,composite}.png
        per image and metrics.json, after what an earlier evaluation wrote
        there is removed (`clear_previous_evaluation`).
      limit: evaluate only the first `limit` images (sorted by path).
      method: the name recorded and shown; default the inpainter's __name__.
      options: the inpainter's settings that change its outputs (e.g. GLCIC's
        post-processing), recorded as they are.
      progress: show a progress bar (off in notebooks, whose saved outputs it
        would fill).
      perceptual: the LPIPS and Inception networks
        (`perceptual_metrics.load_networks`), or None for none of LPIPS, FID
        and KID. They score the 8-bit images written to `output_dir`.

    Returns:
      The metrics.json content: {"method", "options", "images", "masks", "image_size",
      "count", "skipped": [{"path", "reason"}], "seconds_per_image",
      "overall": {psnr, ssim, l1_hole, l2_hole, l1}, "by_hole_area": {bin:
      {"count", psnr, ...}} (non-empty bins, in order), "per_image": [{"name",
      "file", "hole_area" (fraction of the image), "hole_area_bin",
      psnr, ssim, l1, l2, psnr_hole, ssim_hole, l1_hole, l2_hole}]}; for an
      inpainter with an `unfilled_hole(mask)` method (a centre-region model)
      also "unfilled_hole": {"images", "pixels", "hole_pixels"} and a per-image
      "unfilled_hole_pixels". With `perceptual`: "lpips_<net>" per image, per
      bin and overall; "fid" and "kid" ({"mean", "std"}) overall; and
      "perceptual": {"images", "weights", "kid_subsets", "kid_subset_size",
      "skipped": {metric: reason}}.

    Raises:
      ValueError: bad image_size, limit or mask source; no usable image.
      FileNotFoundError: images_dir does not exist.
      RuntimeError: the inpainter broke its contract on an image (named).
    """
    image_size = _check_image_size(image_size)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}.")
    if not callable(inpainter):
        raise ValueError(f"inpainter must be callable(image, mask), got {inpainter!r}.")
    method = method or _method_name(inpainter)
    # Check the masks before reading any image: a typo should fail at once.
    _check_mask_source(mask_source)
    mask_files = None if mask_source in MASK_SOURCES else list_mask_files(mask_source)

    scanned = image_files.scan_image_folder(images_dir)
    names = output_names(scanned.files, images_dir)  # over all files: stable under `limit`
    pairs = list(zip(scanned.files, names))[:limit]
    clear_previous_evaluation(output_dir)
    os.makedirs(output_dir, exist_ok=True)

    # A centre-region model fills only part of a hole elsewhere: count what it leaves.
    unfilled_hole = getattr(inpainter, "unfilled_hole", None)
    scorer = (perceptual_metrics.SetScorer(perceptual, image_size=image_size)
              if perceptual is not None else None)
    per_image, seconds = [], 0.0
    for path, name in tqdm.tqdm(pairs, desc=method, unit="image", disable=not progress):
        target = load_image(path, image_size)
        mask = mask_for(name, mask_source, image_size, mask_files)
        start = time.perf_counter()
        # The hole blanked (a copy, so an inpainter that writes into its input cannot
        # change the target either).
        hidden = common_masks.blank_hole(target[None], mask[None, ..., None].astype(np.float32))
        result = inpainter(hidden.numpy()[0], mask.copy())
        seconds += time.perf_counter() - start
        composite = _check_output(result, target, mask, name)
        _save_pngs(output_dir, name, target, mask, composite)
        per_image.append({"name": name, "file": os.path.relpath(path, images_dir),
                          "hole_area": float(mask.mean()), "hole_area_bin": hole_area_bin(mask),
                          **image_metrics(composite, target, mask)})
        if unfilled_hole is not None:
            per_image[-1]["unfilled_hole_pixels"] = int(np.count_nonzero(unfilled_hole(mask)))
        if scorer is not None:  # on the 8-bit composite written above
            scorer.add(image_files.to_uint8(composite) / np.float32(255.0), target)

    summary_keys = SUMMARY_METRICS
    perceptual_record = perceptual_results = None
    if scorer is not None:
        perceptual_results = scorer.finish()
        if perceptual_results["lpips"] is not None:
            summary_keys += (scorer.networks.lpips_key,)
            for record, value in zip(per_image, perceptual_results["lpips"]):
                record[scorer.networks.lpips_key] = value
        perceptual_record = {
            "images": len(per_image), "weights": dict(scorer.networks.weights),
            "skipped": perceptual_results["skipped"]}
        if perceptual_results["kid"] is not None:
            perceptual_record.update(kid_subsets=perceptual_results["kid"]["subsets"],
                                     kid_subset_size=perceptual_results["kid"]["subset_size"])
    by_hole_area = {}
    for bin_name in bin_names():
        members = [r for r in per_image if r["hole_area_bin"] == bin_name]
        if members:
            by_hole_area[bin_name] = {"count": len(members), **summarize(members, summary_keys)}
    results = {
        "method": method,
        "options": dict(options or {}),
        "images": images_dir,
        "masks": mask_source,
        "image_size": image_size,
        "count": len(per_image),
        "skipped": [{"path": p, "reason": r} for p, r in scanned.skipped],
        "seconds_per_image": seconds / len(per_image),
        "overall": summarize(per_image, summary_keys),
        "by_hole_area": by_hole_area,
        "per_image": per_image,
    }
    if perceptual_record is not None:
        if perceptual_results["fid"] is not None:
            results["overall"]["fid"] = perceptual_results["fid"]
        if perceptual_results["kid"] is not None:
            kid = perceptual_results["kid"]
            results["overall"]["kid"] = {"mean": kid["mean"], "std": kid["std"]}
        results["perceptual"] = perceptual_record
    if unfilled_hole is not None:
        unfilled = results["unfilled_hole"] = unfilled_summary(per_image, image_size)
        if unfilled["pixels"]:
            logging.warning("%s fills only the centre of its input: it left %d of %d hole "
                            "pixels unfilled, in %d of %d images (metrics.json: "
                            "unfilled_hole).", method, unfilled["pixels"],
                            unfilled["hole_pixels"], unfilled["images"], len(per_image))
    atomic.write_json(os.path.join(output_dir, "metrics.json"), results)
    logging.info("%s on %d images of %s with %s masks: %s", method, len(per_image), images_dir,
                 mask_source, results["overall"])
    return results


def unfilled_summary(per_image: list[dict], image_size: int) -> dict:
    """{"images", "pixels", "hole_pixels"}: how many images and hole pixels a
    centre-region model left unfilled, out of every hole pixel evaluated."""
    return {"images": sum(1 for r in per_image if r["unfilled_hole_pixels"]),
            "pixels": sum(r["unfilled_hole_pixels"] for r in per_image),
            "hole_pixels": round(sum(r["hole_area"] for r in per_image) * image_size ** 2)}


# --------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------

_TABLE_COLUMNS = (("PSNR (dB)", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.4f}"),
                  ("L1 hole", "l1_hole", "{:.4f}"), ("L2 hole", "l2_hole", "{:.4f}"),
                  ("L1", "l1", "{:.4f}"))


# Shown only when some result has them (their weight files were found).
_PERCEPTUAL_COLUMNS = (("LPIPS (alex)", "lpips_alex", "{:.4f}"), ("LPIPS (vgg)", "lpips_vgg", "{:.4f}"),
                       ("FID", "fid", "{:.2f}"), ("KID", "kid", "{:.4f}"))


def _cell(value, form: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):  # KID: mean and standard deviation over its subsets
        return f"{form.format(value['mean'])} ± {form.format(value['std'])}"
    return form.format(value)


def markdown_table(results: Sequence[dict]) -> str:
    """A Markdown table with one row per `evaluate` result: method, count and the overall
    metrics; LPIPS, FID and KID columns where any result has them.

    Raises:
      ValueError: if `results` is empty or a result lacks a field.
    """
    if not results:
        raise ValueError("markdown_table needs at least one evaluate() result.")
    columns = list(_TABLE_COLUMNS) + [
        column for column in _PERCEPTUAL_COLUMNS
        if any(column[1] in result.get("overall", {}) for result in results)]
    header = ["method", "images"] + [title for title, _, _ in columns]
    rows = []
    for index, result in enumerate(results):
        missing = [k for k in ("method", "count", "overall") if k not in result]
        missing += [k for _, k, _ in _TABLE_COLUMNS if k not in result.get("overall", {})]
        if missing:
            raise ValueError(f"results[{index}] lacks {missing}: pass the dicts returned by evaluate().")
        cells = [str(result["method"]), str(result["count"])]
        cells += [_cell(result["overall"].get(key), form) for _, key, form in columns]
        rows.append(cells)
    return markdown.table(header, rows) + "\n"


def markdown_bins_table(results: Sequence[dict], metric: str = "psnr",
                        form: str = "{:.2f}") -> str:
    """A Markdown table of `metric` by hole-area bin: one row per `evaluate` result, one
    column per bin that any result has ("n/a" where a result has no image in it)."""
    bins = [b for b in bin_names() if any(b in r["by_hole_area"] for r in results)]
    if not bins:
        raise ValueError("markdown_bins_table needs evaluate() results with images.")
    rows = [[str(result["method"])] + [
        form.format(result["by_hole_area"][b][metric]) if b in result["by_hole_area"] else "n/a"
        for b in bins] for result in results]
    return markdown.table(["method"] + bins, rows) + "\n"
