"""Image-quality metrics for inpainting: PSNR, SSIM, L1 and L2, whole image or hole only.

Every metric takes images in the suite's range [-1, 1], converts them to
[0, 1] and clips to that range (as saving to an 8-bit image would), so the
numbers are on the scale papers report: data range 1 for PSNR and SSIM, L1/L2
in [0, 1] units. Nothing is quantised to 8 bits.

Per-image functions return a float32 tensor of shape [N]. With a mask
([N, H, W, 1], 1 = hole) only hole pixels count; an image whose hole is empty
has no defined hole metric and gets NaN, which `inpainting_metrics` leaves out
of its batch means.

All functions use `tf` ops so they can run inside `tf.function`.
"""

from __future__ import annotations

import tensorflow as tf

# Standard SSIM constants (Wang et al. 2004), identical to tf.image.ssim and
# skimage's structural_similarity(gaussian_weights=True, sigma=1.5).
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """Maps float images from [-1, 1] to [0, 1] (float32), clipping outliers."""
    return tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 0.5, 0.0, 1.0)


def _hole_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per-image mean of `values` [N,H,W,C] weighted by `mask` [N,H,W,1]; NaN if no hole."""
    mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(values))
    hole_sum = tf.reduce_sum(mask * values, axis=[1, 2, 3])
    hole_count = tf.reduce_sum(mask, axis=[1, 2, 3])
    # 0 / 0 = NaN on purpose: "no hole" must not look like a perfect score.
    return hole_sum / hole_count


def _per_image_mean(values: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    if mask is None:
        return tf.reduce_mean(values, axis=[1, 2, 3])
    return _hole_mean(values, mask)


def _check_mask(mask: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """Raises ValueError early if a static mask shape cannot match the images."""
    if mask is None:
        return
    mask_shape, image_shape = mask.shape, images.shape
    if mask_shape.rank is not None and mask_shape.rank != 4:
        raise ValueError(f"mask must have shape [N, H, W, 1], got {mask_shape}.")
    if mask_shape.rank == 4 and image_shape.rank == 4:
        if not mask_shape[1:3].is_compatible_with(image_shape[1:3]):
            raise ValueError(
                f"mask spatial shape {mask_shape[1:3]} does not match the images' {image_shape[1:3]}."
            )
        if mask_shape[-1] not in (None, 1):
            raise ValueError(f"mask must have a single channel, got shape {mask_shape}.")


def _prepare(pred: tf.Tensor, target: tf.Tensor,
             mask: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    pred, target = to_unit_range(pred), to_unit_range(target)
    if mask is not None:
        mask = tf.cast(mask, tf.float32)
        _check_mask(mask, pred)
    return pred, target, mask


def l1(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Per-image mean absolute error in [0, 1] units (inputs in [-1, 1]).

    Args:
      pred, target: [N, H, W, C] images in [-1, 1].
      mask: optional [N, H, W, 1], 1 = hole. None: mean over the whole image;
        otherwise mean over hole pixels (and channels) only.

    Returns:
      float32 [N].
    """
    pred, target, mask = _prepare(pred, target, mask)
    return _per_image_mean(tf.abs(pred - target), mask)


def l2(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Per-image mean squared error in [0, 1] units; see `l1` for the arguments."""
    pred, target, mask = _prepare(pred, target, mask)
    return _per_image_mean(tf.math.squared_difference(pred, target), mask)


def psnr(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor | None = None,
         max_psnr: float = 100.0) -> tf.Tensor:
    """Per-image PSNR in dB with data range 1 (inputs in [-1, 1] mapped to [0, 1]).

    PSNR = 10 * log10(1 / MSE). With a mask the MSE is taken over hole pixels
    only. Identical images (MSE = 0) would give +inf, which poisons averages;
    the result is instead capped at `max_psnr`.

    Args:
      pred, target: [N, H, W, C] images in [-1, 1].
      mask: optional [N, H, W, 1], 1 = hole.
      max_psnr: positive upper bound in dB.

    Returns:
      float32 [N].
    """
    if not isinstance(max_psnr, (int, float)) or max_psnr <= 0:
        raise ValueError(f"max_psnr must be a positive number, got {max_psnr!r}.")
    mse = l2(pred, target, mask)
    # Flooring the MSE at the value whose PSNR is max_psnr caps the result
    # without an inf ever appearing (which would also break gradients).
    min_mse = 10.0 ** (-max_psnr / 10.0)
    return -10.0 * tf.math.log(tf.maximum(mse, min_mse)) / tf.math.log(10.0)


def _gaussian_window(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA) -> tf.Tensor:
    """Normalised 2-D Gaussian window [size, size], as tf.image.ssim builds it."""
    coords = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
    g = tf.exp(-tf.square(coords) / (2.0 * sigma**2))
    g = g / tf.reduce_sum(g)
    return tf.tensordot(g, g, axes=0)


def ssim_map(pred: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """SSIM map [N, H-10, W-10, C] of images already in [0, 1].

    Gaussian 11x11 window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 1.
    The map covers only the "valid" region where the window fits inside the
    image, exactly like `tf.image.ssim`: map pixel (i, j) is the window
    centred on image pixel (i + 5, j + 5).
    """
    channels = tf.shape(pred)[-1]
    window = _gaussian_window()[:, :, tf.newaxis, tf.newaxis]
    window = tf.tile(window, [1, 1, channels, 1])

    def local_mean(x):
        return tf.nn.depthwise_conv2d(x, window, strides=[1, 1, 1, 1], padding="VALID")

    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    mu_pred, mu_target = local_mean(pred), local_mean(target)
    # Biased (population) variances, as tf.image.ssim and skimage with
    # use_sample_covariance=False.
    var_pred = local_mean(pred * pred) - mu_pred**2
    var_target = local_mean(target * target) - mu_target**2
    covariance = local_mean(pred * target) - mu_pred * mu_target
    luminance = (2.0 * mu_pred * mu_target + c1) / (mu_pred**2 + mu_target**2 + c1)
    contrast_structure = (2.0 * covariance + c2) / (var_pred + var_target + c2)
    return luminance * contrast_structure


def ssim(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Per-image SSIM (inputs in [-1, 1] mapped to [0, 1]; data range 1).

    Standard SSIM computed on each channel and averaged over channels and over
    the valid region of the SSIM map (windows that fit inside the image). The
    unmasked value matches `tf.image.ssim(max_val=1.0)`.

    With a mask, the mask is cropped by 5 pixels on each side to the valid map
    region, so a window counts when its *centre* pixel is in the hole; the map
    (averaged over channels) is averaged over those windows. Hole pixels
    closer than 5 pixels to the image border therefore do not count. Windows
    centred in the hole also see some known pixels around it: this is the
    usual compromise for a local metric on an arbitrary region.

    Args:
      pred, target: [N, H, W, C] images in [-1, 1], H and W >= 11.
      mask: optional [N, H, W, 1], 1 = hole.

    Returns:
      float32 [N]; NaN for images with no hole centre in the valid region.
    """
    pred, target, mask = _prepare(pred, target, mask)
    for dim in pred.shape[1:3]:
        if dim is not None and dim < SSIM_WINDOW_SIZE:
            raise ValueError(
                f"ssim needs images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE}, got shape {pred.shape}."
            )
    values = ssim_map(pred, target)
    if mask is None:
        return tf.reduce_mean(values, axis=[1, 2, 3])
    border = SSIM_WINDOW_SIZE // 2
    valid_mask = mask[:, border:-border, border:-border, :]
    return _hole_mean(tf.reduce_mean(values, axis=-1, keepdims=True), valid_mask)


def _nan_mean(values: tf.Tensor) -> tf.Tensor:
    """Mean over entries that are not NaN (NaN if all are)."""
    valid = tf.logical_not(tf.math.is_nan(values))
    total = tf.reduce_sum(tf.where(valid, values, tf.zeros_like(values)))
    return total / tf.reduce_sum(tf.cast(valid, tf.float32))


def inpainting_metrics(composite: tf.Tensor, target: tf.Tensor,
                       mask: tf.Tensor) -> dict[str, tf.Tensor]:
    """Batch means of the standard inpainting metrics.

    Args:
      composite: [N, H, W, C] in [-1, 1], the output pasted into the known
        pixels (so whole-image metrics reflect what a user sees).
      target: [N, H, W, C] ground truth in [-1, 1].
      mask: [N, H, W, 1], 1 = hole.

    Returns:
      dict of float32 scalars: "psnr", "ssim", "l1", "l2" over whole images,
      and "psnr_hole", "ssim_hole", "l1_hole", "l2_hole" over hole pixels.
      Images with an empty hole are left out of the *_hole means.
    """
    if mask is None:
        raise ValueError("mask is required by inpainting_metrics (1 = hole).")
    per_image = {
        "psnr": psnr(composite, target),
        "ssim": ssim(composite, target),
        "l1": l1(composite, target),
        "l2": l2(composite, target),
        "psnr_hole": psnr(composite, target, mask),
        "ssim_hole": ssim(composite, target, mask),
        "l1_hole": l1(composite, target, mask),
        "l2_hole": l2(composite, target, mask),
    }
    return {name: _nan_mean(values) for name, values in per_image.items()}
