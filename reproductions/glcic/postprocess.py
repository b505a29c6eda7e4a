"""GLCIC inference post-processing: fast marching, then Poisson image blending.

The official inference code (inpaint.lua) finishes every completion with

    dst = cv.inpaint(out, mask, inpaintRadius=1, INPAINT_TELEA)
    out = cv.seamlessClone(src=out, dst=dst, mask, p=<centre of the mask's box>, NORMAL_CLONE)

where `out` is the network's completion composited with the known pixels. The
Telea fill gives a destination whose hole agrees with its surroundings; the
Poisson solve then keeps the *gradients* of the network's completion inside
the hole while taking the *values* at the boundary from that destination, which
removes colour shifts between the completion and the context. It is applied at
inference only, never inside a training loss.

Differences from calling OpenCV directly, all in service of the same result:

* The images are padded by `_PAD` pixels (the mask with zeros) before
  seamlessClone and cropped back afterwards. OpenCV clears a 1-pixel frame of
  the mask, so a hole touching the image border would otherwise lose its
  outermost row/column and the clone would land shifted; the pad moves the
  frame off the hole. The pad values never reach the solver, because OpenCV
  solves only inside the mask's bounding box, which lies in the original image.
* The clone centre is `top_left + size // 2` of the mask's bounding box, the
  point at which OpenCV clones the box exactly in place. The Lua code's
  `min + floor((max - min) / 2)` would put even-sized boxes one pixel up or
  left with the current OpenCV.
* The known pixels are re-composited from the input afterwards, so they are
  bit-identical to it (OpenCV rewrites the whole bounding box, including known
  pixels inside it).
* The mask is handed to OpenCV as a fresh copy on every call: OpenCV 5's
  seamlessClone modifies its mask argument in place.
* A hole whose bounding box is under 3 pixels on a side (where OpenCV raises)
  gets the Telea fill, which is what the solve reduces to there.

As in OpenCV, the outermost ring of the bounding box is the Dirichlet boundary
and keeps the Telea values; for a hole touching the image border that ring
includes the border pixels of the hole.

Both OpenCV steps act on each colour channel independently with shared
weights, so RGB arrays go in and come out without any BGR conversion.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV zeroes a 1-pixel frame of the seamlessClone mask; one pixel of padding
# keeps every hole pixel inside the mask. Pad contents are never read.
_PAD = 1


def _check_image(array, name: str) -> np.ndarray:
    """`array` as a uint8 HxWx3 ndarray, or a ValueError naming `name`."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 with values 0..255, got dtype {array.dtype}; "
            "convert float [0, 1] images with np.round(x * 255) or use poisson_blend_batch.")
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape HxWx3 (RGB), got {array.shape}.")
    if array.shape[0] < 2 or array.shape[1] < 2:
        # OpenCV's Telea fill gives non-deterministic output on 1-pixel-wide images.
        raise ValueError(f"{name} must be at least 2x2, got {array.shape}.")
    return array


def _check_mask(mask, image_hw: tuple[int, int], name: str = "mask") -> np.ndarray:
    """`mask` (HxW or HxWx1, bool/int/float, nonzero = hole) as a bool HxW array."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != tuple(image_hw):
        raise ValueError(f"{name} must have shape {tuple(image_hw)} or {(*image_hw, 1)} "
                         f"to match the image, got {mask.shape}.")
    if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)
            or np.issubdtype(mask.dtype, np.floating)):
        raise ValueError(f"{name} must be bool, integer or float, got dtype {mask.dtype}.")
    if np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
        raise ValueError(f"{name} must be finite (nonzero = hole), found NaN or inf.")
    return mask != 0


def _box_centre(mask_u8: np.ndarray) -> tuple[int, int]:
    """(x, y) at which seamlessClone puts the mask's bounding box back in place.

    OpenCV places the box at `p - size // 2`, so p = top_left + size // 2.
    """
    x, y, w, h = cv2.boundingRect(mask_u8)
    return x + w // 2, y + h // 2


def poisson_blend(image: np.ndarray, completed: np.ndarray, mask) -> np.ndarray:
    """GLCIC post-processing of one completion: Telea fill + Poisson blending.

    Args:
      image: uint8 HxWx3 RGB. Its known pixels are the truth; its hole pixels
        are ignored.
      completed: uint8 HxWx3, the network's completion (only its hole pixels
        are used).
      mask: HxW or HxWx1, bool, integer or float; nonzero marks the hole.

    Returns:
      A new uint8 HxWx3 array: the known pixels of `image`, bit for bit, and the
      blended hole. An empty mask returns a copy of `image`; a mask covering the
      whole image returns a copy of `completed` (there is no boundary to blend
      towards).
    """
    image = _check_image(image, "image")
    completed = _check_image(completed, "completed")
    if completed.shape != image.shape:
        raise ValueError(f"completed must have the shape of image {image.shape}, "
                         f"got {completed.shape}.")
    hole = _check_mask(mask, image.shape[:2])
    if not hole.any():
        return image.copy()
    if hole.all():
        return completed.copy()

    hole3 = hole[..., None]
    composite = np.where(hole3, completed, image)
    hole_u8 = hole.astype(np.uint8) * 255  # OpenCV weights the mask as value / 255

    # Destination: the hole filled from its border by fast marching. Done before
    # padding so only real known pixels feed it.
    destination = cv2.inpaint(composite, hole_u8, 1, cv2.INPAINT_TELEA)

    _, _, box_w, box_h = cv2.boundingRect(hole_u8)
    if min(box_w, box_h) < 3:
        # OpenCV's solver raises on boxes under 3 px a side. Such a box has no
        # interior: every pixel is on its Dirichlet boundary, where the solution
        # is the destination itself.
        return np.where(hole3, destination, image)

    pad3 = ((_PAD, _PAD), (_PAD, _PAD), (0, 0))
    src_p = np.pad(composite, pad3, mode="edge")
    dst_p = np.pad(destination, pad3, mode="edge")
    mask_p = np.pad(hole_u8, _PAD)  # zeros: the pad is never part of the hole
    centre = _box_centre(mask_p)
    blended = cv2.seamlessClone(src_p, dst_p, mask_p.copy(), centre, cv2.NORMAL_CLONE)
    blended = blended[_PAD:-_PAD, _PAD:-_PAD]

    # OpenCV rewrites the whole bounding box; only the hole may change.
    return np.where(hole3, blended, image)


def _check_batch(array, name: str) -> np.ndarray:
    """`array` as a finite float NHWC (C = 3) array in [0, 1], or a ValueError."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be a float array in [0, 1], got dtype {array.dtype}.")
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape NxHxWx3, got {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, found NaN or inf.")
    # A small tolerance for float noise; anything beyond it is a range mistake
    # such as [-1, 1] or [0, 255] data.
    lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}].")
    return array


def _to_uint8(array01: np.ndarray) -> np.ndarray:
    """[0, 1] floats to 0..255 with rounding (not truncation)."""
    return np.round(np.clip(array01, 0.0, 1.0) * 255.0).astype(np.uint8)


def poisson_blend_batch(images01, completed01, masks) -> np.ndarray:
    """`poisson_blend` over a batch of float images, as used at inference.

    Args:
      images01: float NxHxWx3 in [0, 1], the originals (hole pixels ignored).
      completed01: float NxHxWx3 in [0, 1], the network's completions.
      masks: NxHxW or NxHxWx1, bool, integer or float; nonzero marks the hole.

    Returns:
      float32 NxHxWx3 in [0, 1]. Hole pixels are the 8-bit blend / 255 (inputs
      are rounded to uint8 for OpenCV); known pixels are `images01` exactly, so
      quantisation never touches them.
    """
    images01 = _check_batch(images01, "images01")
    completed01 = _check_batch(completed01, "completed01")
    if completed01.shape != images01.shape:
        raise ValueError(f"completed01 must have the shape of images01 {images01.shape}, "
                         f"got {completed01.shape}.")
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.shape != images01.shape[:3]:
        raise ValueError(f"masks must have shape {images01.shape[:3]} or "
                         f"{(*images01.shape[:3], 1)} to match images01, got {masks.shape}.")

    images_u8 = _to_uint8(images01)
    completed_u8 = _to_uint8(completed01)
    out = np.empty(images01.shape, np.float32)
    for i in range(images01.shape[0]):
        hole = _check_mask(masks[i], images01.shape[1:3], name="masks")
        blended = poisson_blend(images_u8[i], completed_u8[i], hole)
        out[i] = np.where(hole[..., None], blended.astype(np.float32) / 255.0, images01[i])
    return out
