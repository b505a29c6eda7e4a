"""Classical (non-learned) inpainters, the reference points of the results table.

Every function here is an *inpainter*: `inpainter(image, mask) -> composite`.

  * image: float HxWx3 RGB in [0, 1]. Hole pixels may hold anything (even
    NaN): they are never read.
  * mask: bool HxW (or HxWx1), True = hole. 0/1 integer or float masks are
    accepted too.
  * composite: float32 HxWx3 in [0, 1] whose known pixels are bit-identical to
    the input's and whose hole pixels are the method's fill.

A mask without a hole returns the image unchanged. A mask without a known
pixel leaves nothing to propagate: every method then fills with mid-gray 0.5.

  telea          OpenCV's fast marching method (Telea 2004), on 8-bit RGB.
  ns             OpenCV's Navier-Stokes method (Bertalmio et al. 2001), on 8-bit RGB.
  biharmonic     scikit-image's biharmonic equation solver, in float.
  mean_fill      the per-channel mean colour of the known pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

from common.errors import UserError

# The fill when no pixel is known: the middle of the [0, 1] range.
GRAY = 0.5


def check_inputs(image, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validates an inpainter's arguments; returns (float32 HxWx3 image, bool HxW mask).

    Raises:
      ValueError: if the image is not a float HxWx3 array, if the mask is not
        HxW or HxWx1 of the image's size, if the mask holds values other than
        0/1, or if a known pixel is outside [0, 1] (e.g. an image in [-1, 1]
        or [0, 255] passed by mistake).
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be an HxWx3 RGB array, got shape {image.shape}.")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be float in [0, 1], got dtype {image.dtype} "
                         "(divide 8-bit images by 255).")
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must have shape {image.shape[:2]} or {image.shape[:2] + (1,)} "
                         f"to match the image {image.shape}, got {np.shape(mask)}.")
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be bool (True = hole) or hold only 0 and 1, got values "
                             f"in [{mask.min()}, {mask.max()}].")
        mask = mask.astype(bool)
    image = image.astype(np.float32, copy=False)
    known = image[~mask]
    if known.size and (not np.all(np.isfinite(known)) or known.min() < 0.0 or known.max() > 1.0):
        raise ValueError("image must be in [0, 1] at known pixels, got values in "
                         f"[{np.nanmin(known)}, {np.nanmax(known)}] (or non-finite).")
    return image, mask


def composite(image: np.ndarray, mask: np.ndarray, fill) -> np.ndarray:
    """float32 `image` with hole pixels taken from `fill` (HxWx3 or broadcastable), clipped to [0, 1]."""
    fill = np.clip(np.broadcast_to(np.asarray(fill, np.float32), image.shape), 0.0, 1.0)
    return np.where(mask[..., None], fill, image).astype(np.float32)


def _run(image, mask, fill_fn) -> np.ndarray:
    """Checks the inputs, handles the empty and full masks, and composites `fill_fn`'s output.

    `fill_fn(image, mask)` receives an image whose hole pixels are zeroed (so
    whatever the caller left there, NaN included, cannot leak into the fill)
    and a mask with at least one hole and one known pixel.
    """
    image, mask = check_inputs(image, mask)
    if not mask.any():
        return image.copy()
    if mask.all():
        return np.full(image.shape, GRAY, np.float32)
    clean = np.where(mask[..., None], np.float32(0.0), image)
    return composite(image, mask, fill_fn(clean, mask))


def _check_radius(radius) -> int:
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or radius < 1:
        raise UserError(f"radius must be a positive int (pixels), got {radius!r}.")
    return int(radius)


def _opencv_inpaint(image: np.ndarray, mask: np.ndarray, radius: int, flags: int) -> np.ndarray:
    """cv2.inpaint on the rounded 8-bit image; returns the fill as float in [0, 1]."""
    # cv2.inpaint only takes 8-bit (or 1-channel float) images; channel
    # order does not matter to it, so RGB goes in as is.
    image_u8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    mask_u8 = mask.astype(np.uint8) * 255
    filled = cv2.inpaint(image_u8, mask_u8, radius, flags)
    return filled.astype(np.float32) / 255.0


def telea(image, mask, radius: int = 3) -> np.ndarray:
    """OpenCV fast-marching inpainting (Telea 2004) with a `radius`-pixel neighbourhood."""
    radius = _check_radius(radius)
    return _run(image, mask, lambda im, m: _opencv_inpaint(im, m, radius, cv2.INPAINT_TELEA))


def navier_stokes(image, mask, radius: int = 3) -> np.ndarray:
    """OpenCV Navier-Stokes inpainting (Bertalmio et al. 2001) with a `radius`-pixel neighbourhood."""
    radius = _check_radius(radius)
    return _run(image, mask, lambda im, m: _opencv_inpaint(im, m, radius, cv2.INPAINT_NS))


def biharmonic(image, mask) -> np.ndarray:
    """scikit-image biharmonic inpainting, in float (no 8-bit rounding)."""
    # The solver can overshoot [0, 1] near strong edges; `composite` clips.
    return _run(image, mask, lambda im, m: inpaint_biharmonic(im, m, channel_axis=-1))


def mean_fill(image, mask) -> np.ndarray:
    """Fills the hole with the per-channel mean of the known pixels (0.5 gray if none)."""
    # float64 accumulation: float32 sums of large images lose digits.
    return _run(image, mask, lambda im, m: im[~m].mean(axis=0, dtype=np.float64))


BASELINES = {"telea": telea, "ns": navier_stokes, "biharmonic": biharmonic, "mean_fill": mean_fill}
