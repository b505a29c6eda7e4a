"""DMFN's own losses (Hui et al., "Image Fine-grained Inpainting", arXiv 2002.02609).

The generator objective of the official code (Zheng222/DMFN) is

  L_G = pixel_weight * L1
      + feature_weight * (L_self_guided + L_feature_matching)     # VGG19 terms
      + align_weight * L_align                                    # on relu4_1
      + gan_weight * L_RaGAN                                      # relativistic average GAN
      + dfm_weight * L_discriminator_feature_matching

Every VGG or discriminator layer l is weighted by 1e3 / C_l^2 (`layer_weight`).
The functions here compute the unweighted terms; the caller multiplies them by
the weights above, the fields of `train_lib.Config` (whose defaults are the
official ones, and are the flags' defaults).

The relativistic losses are the suite's `ragan_discriminator_loss` and
`ragan_generator_loss` from `common.losses`, re-exported here: DMFN uses the
generator one with weight gan_weight, on the logits of its local + global
discriminator. The pixel and feature L1 terms also reuse `common.losses`.

Tensors are NHWC; inputs are cast to float32. Images are in [-1, 1] (the
composited output and the ground truth); VGG features come from
`common.vgg.FeatureExtractor("vgg19", VGG_LAYERS, ...)`. Target (ground-truth)
features are constants everywhere, as in the official code, which detaches them.
Everything runs inside `tf.function` and XLA.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import tensorflow as tf

from common.losses import ragan_discriminator_loss, ragan_generator_loss, weighted_l1

__all__ = [
    "VGG_LAYERS", "GUIDED_LAYERS", "FEATURE_MATCHING_LAYERS", "ALIGN_LAYER", "DISCRIMINATOR_CHANNELS",
    "layer_weight", "pixel_loss",
    "normalized_error_map", "self_guided_weight_map", "guidance_for_level", "guidance_maps",
    "self_guided_regression_loss", "feature_matching_loss",
    "coordinate_grids", "feature_centroids", "align_loss",
    "vgg_features", "vgg_terms",
    "discriminator_feature_matching_loss",
    "ragan_discriminator_loss", "ragan_generator_loss",
]

VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The self-guided term replaces plain feature matching on the first two taps.
GUIDED_LAYERS = ("relu1_1", "relu2_1")
FEATURE_MATCHING_LAYERS = ("relu3_1", "relu4_1", "relu5_1")
ALIGN_LAYER = "relu4_1"
# Channels of the five local-branch discriminator features used for matching.
DISCRIMINATOR_CHANNELS = (64, 128, 256, 512, 512)

# Keeps every channel's activation mass positive, so a dead (all-zero)
# channel has a centroid (the grid centre) instead of 0 / 0.
_CENTROID_EPSILON = 1e-7

_TAP_NAME = re.compile(r"^(?:conv|relu)(\d)_\d$")


def _as_float32(*tensors: tf.Tensor) -> tuple[tf.Tensor, ...]:
    return [tf.cast(t, tf.float32) for t in tensors]


def _check_positive_int(value: int, name: str) -> int:
    # bool is an int subclass; True is never a meaningful size.
    if isinstance(value, bool) or not hasattr(value, "__index__") or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


# ---------------------------------------------------------------------------
# Weights and pixel loss
# ---------------------------------------------------------------------------


def layer_weight(channels: int) -> float:
    """DMFN's per-layer weight 1e3 / C^2, e.g. 0.244140625 for 64 channels.

    It evens out the magnitudes of shallow (few, large) and deep (many, small)
    feature maps; both VGG and discriminator feature terms use it.
    """
    channels = _check_positive_int(channels, "channels")
    return 1e3 / channels**2


def pixel_loss(output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """L1 mean over all elements; on the composite, only the hole contributes."""
    return weighted_l1(output, target)


# ---------------------------------------------------------------------------
# Self-guided regression loss
# ---------------------------------------------------------------------------


def normalized_error_map(output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Ē = E / max_{h,w} E per image, with E = mean over channels of (output - target)^2.

    Args:
      output, target: [N, H, W, C] images.

    Returns:
      A float32 [N, H, W, 1] map in [0, 1]. An image with no error (output ==
      target) gets an all-zero map, not NaN. The map is a constant: no
      gradient flows through it (the official code detaches the output).
    """
    output, target = _as_float32(output, target)
    # The map only weights the feature loss; the generator must not learn to
    # change it, so both inputs are constants here.
    error = tf.reduce_mean(
        tf.math.squared_difference(tf.stop_gradient(output), tf.stop_gradient(target)), axis=-1, keepdims=True
    )
    peak = tf.reduce_max(error, axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(error, peak)


def guidance_for_level(error_map_normalized: tf.Tensor, level: int) -> tf.Tensor:
    """The guidance 1 + Ē at 1 / 2^level of the image resolution.

    Level 0 (relu1_1, full resolution) is 1 + Ē; level 1 (relu2_1, half
    resolution) is 1 + avgpool2x2(Ē); each further level pools 2x2 again,
    matching VGG's 2x2 max-pools (odd sizes are floored like them).

    Args:
      error_map_normalized: [N, H, W, 1] from `normalized_error_map`.
      level: Python int >= 0.
    """
    if isinstance(level, bool) or not hasattr(level, "__index__") or level < 0:
        raise ValueError(f"level must be an int >= 0, got {level!r}.")
    (error_map,) = _as_float32(error_map_normalized)
    for _ in range(int(level)):
        error_map = tf.nn.avg_pool2d(error_map, ksize=2, strides=2, padding="VALID")
    return 1.0 + error_map


def self_guided_weight_map(output: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """The full-resolution guidance 1 + Ē ([N, H, W, 1], float32, no gradient)."""
    return guidance_for_level(normalized_error_map(output, target), 0)


def _vgg_level(layer: str) -> int:
    """Pooling level of a VGG tap: relu{B}_K is at 1 / 2^(B - 1) resolution."""
    match = _TAP_NAME.match(layer) if isinstance(layer, str) else None
    if match is None:
        raise ValueError(f"Expected a VGG tap name such as 'relu2_1', got {layer!r}.")
    return int(match.group(1)) - 1


def guidance_maps(output: tf.Tensor, target: tf.Tensor,
                  layers: Sequence[str] = GUIDED_LAYERS) -> dict[str, tf.Tensor]:
    """{layer: guidance} for VGG taps `layers`, each at the resolution of that tap."""
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers must be a non-empty sequence of VGG tap names, got {layers!r}.")
    error_map = normalized_error_map(output, target)
    return {layer: guidance_for_level(error_map, _vgg_level(layer)) for layer in layers}


def _weighted_feature_l1(out_features: Mapping[str, tf.Tensor], target_features: Mapping[str, tf.Tensor], layers: Sequence[str],
                         channels: Mapping[str, int],
                         guidance: Mapping[str, tf.Tensor] | None = None) -> tf.Tensor:
    """Σ_l 1e3/C_l² · mean(G_l · |φ_l(out) − φ_l(gt)|); shared by both VGG terms."""
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers must be a non-empty sequence of layer names, got {layers!r}.")
    total = tf.constant(0.0, tf.float32)
    for layer in layers:
        for what, mapping in (("out_features", out_features), ("target_features", target_features),
                              ("channels", channels)):
            if layer not in mapping:
                raise ValueError(f"{what} has no entry for layer {layer!r} (has {sorted(mapping)}).")
        depth = out_features[layer].shape[-1]
        if depth is not None and depth != channels[layer]:
            raise ValueError(f"Layer {layer!r} has {depth} channels but channels says {channels[layer]}.")
        weights = None if guidance is None else guidance[layer]
        # G >= 1, so |G·a − G·b| = G·|a − b|: common's weighted L1 is the same term.
        total += layer_weight(channels[layer]) * weighted_l1(
            out_features[layer], tf.stop_gradient(tf.cast(target_features[layer], tf.float32)), weights
        )
    return total


def self_guided_regression_loss(out_features: Mapping[str, tf.Tensor], target_features: Mapping[str, tf.Tensor],
                                guidance_maps: Mapping[str, tf.Tensor], channels: Mapping[str, int]):
    """Σ over guided layers of w_l · mean(|G_l·φ_l(out) − G_l·φ_l(gt)|), w_l = 1e3 / C_l².

    Args:
      out_features, target_features: {layer: [N, h, w, C_l]} VGG features of
        the output and of the ground truth (treated as constants).
      guidance_maps: {layer: [N, h, w, 1]} guidance at each layer's resolution
        (see `guidance_maps`); its keys are the guided layers.
      channels: {layer: C_l}, e.g. from `FeatureExtractor.channels`.

    Returns:
      A float32 scalar; each layer's L1 is a mean over N·h·w·C_l.
    """
    return _weighted_feature_l1(out_features, target_features, tuple(guidance_maps), channels, guidance_maps)


def feature_matching_loss(out_features: Mapping[str, tf.Tensor], target_features: Mapping[str, tf.Tensor],
                          layers: Sequence[str], channels: Mapping[str, int]):
    """Σ over `layers` of w_l · mean(|φ_l(out) − φ_l(gt)|), w_l = 1e3 / C_l².

    The official code matches relu3_1, relu4_1 and relu5_1
    (FEATURE_MATCHING_LAYERS); the self-guided term covers relu1_1 and relu2_1.
    Arguments as in `self_guided_regression_loss`.
    """
    return _weighted_feature_l1(out_features, target_features, layers, channels)


# ---------------------------------------------------------------------------
# Geometrical alignment ("center") loss
# ---------------------------------------------------------------------------


def coordinate_grids(height: int | tf.Tensor, width: int | tf.Tensor,
                     official: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """(x_map, y_map), each float32 [height, width], coordinates k / n * 2 - 1 in [-1, 1).

    x varies along columns (x_map[i, j] = j / width * 2 - 1) and y along rows
    (y_map[i, j] = i / height * 2 - 1).

    official=True reproduces the grid of the official `get_coordinate_tensors`,
    where both maps are `np.tile(np.arange(n), (m, 1))`, so BOTH vary along
    the column axis: y_map == x_map, and the "y" centroid is a second copy of
    the x centroid, so vertical misalignment is never penalised. (The official
    code only works on square maps; here the column coordinate is used for
    both maps whatever the shape.)

    height and width may be Python ints or scalar int tensors (dynamic shapes).
    """
    if not isinstance(official, bool):
        raise ValueError(f"official must be a Python bool, got {official!r}.")
    for name, size in (("height", height), ("width", width)):
        if not tf.is_tensor(size):
            _check_positive_int(size, name)
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    columns = tf.cast(tf.range(width), tf.float32) / width_f * 2.0 - 1.0
    rows = tf.cast(tf.range(height), tf.float32) / height_f * 2.0 - 1.0
    x_map = tf.broadcast_to(columns[tf.newaxis, :], tf.stack([height, width]))
    y_map = x_map if official else tf.broadcast_to(rows[:, tf.newaxis], tf.stack([height, width]))
    return x_map, y_map


def feature_centroids(features: tf.Tensor, official_grid: bool = False) -> tf.Tensor:
    """Per-channel centre of mass of [N, H, W, C] features -> [N, C, 2] as (x, y).

    Each channel is made a distribution P = (F + 1e-7) / Σ_{h,w}(F + 1e-7)
    (features are post-ReLU, hence non-negative) and its centroid is
    (Σ P·x_map, Σ P·y_map) on the grid of `coordinate_grids`.
    """
    (features,) = _as_float32(features)
    if features.shape.rank is not None and features.shape.rank != 4:
        raise ValueError(f"features must be NHWC (rank 4), got shape {features.shape}.")
    shape = tf.shape(features)
    x_map, y_map = coordinate_grids(shape[1], shape[2], official=official_grid)
    mass = features + _CENTROID_EPSILON
    probability = mass / tf.reduce_sum(mass, axis=[1, 2], keepdims=True)
    x_center = tf.reduce_sum(probability * x_map[tf.newaxis, :, :, tf.newaxis], axis=[1, 2])
    y_center = tf.reduce_sum(probability * y_map[tf.newaxis, :, :, tf.newaxis], axis=[1, 2])
    return tf.stack([x_center, y_center], axis=-1)


def align_loss(pred_features: tf.Tensor, target_features: tf.Tensor,
               official_grid: bool = False) -> tf.Tensor:
    """Geometrical alignment loss: MSE between per-channel centroids (mean over N·C·2).

    DMFN applies it to relu4_1 features of the output and the ground truth
    (the latter a constant). official_grid=False (default) uses a true 2-D
    grid; True reproduces the official code's grid, blind to vertical shifts
    (see `coordinate_grids`).
    """
    pred_centers = feature_centroids(pred_features, official_grid)
    target_centers = feature_centroids(tf.stop_gradient(tf.cast(target_features, tf.float32)), official_grid)
    return tf.reduce_mean(tf.math.squared_difference(pred_centers, target_centers))


# ---------------------------------------------------------------------------
# All VGG terms from one pair of passes
# ---------------------------------------------------------------------------


def vgg_features(extractor, output: tf.Tensor,
                 target: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """(features of output, features of target): one VGG pass each.

    The target goes in under stop_gradient: the ground truth is data.
    """
    return extractor(output), extractor(tf.stop_gradient(target))


def vgg_terms(extractor, output: tf.Tensor, target: tf.Tensor,
              guided_layers: Sequence[str] = GUIDED_LAYERS,
              fm_layers: Sequence[str] = FEATURE_MATCHING_LAYERS, align_layer: str = ALIGN_LAYER,
              official_grid: bool = False) -> dict[str, tf.Tensor]:
    """DMFN's three VGG19 terms from a single pair of VGG passes.

    Args:
      extractor: a `common.vgg.FeatureExtractor` whose taps include all the
        layers below (e.g. `FeatureExtractor("vgg19", VGG_LAYERS)`).
      output, target: [N, H, W, 3] images in [-1, 1] (the composited output
        and the ground truth).
      guided_layers, fm_layers, align_layer: the official choice by default.
      official_grid: see `align_loss`.

    Returns:
      {"self_guided": L_sg, "feature_matching": L_fm, "align": L_align},
      unweighted float32 scalars. The caller forms
      feature_weight * (L_sg + L_fm) + align_weight * L_align.
    """
    layers = tuple(guided_layers) + tuple(fm_layers) + (align_layer,)
    # FeatureExtractor.channels raises a clear ValueError for a missing tap.
    channels = {layer: extractor.channels(layer) for layer in layers}
    out_features, target_features = vgg_features(extractor, output, target)
    return {
        "self_guided": self_guided_regression_loss(
            out_features, target_features, guidance_maps(output, target, guided_layers), channels
        ),
        "feature_matching": feature_matching_loss(out_features, target_features, fm_layers, channels),
        "align": align_loss(out_features[align_layer], target_features[align_layer], official_grid),
    }


# ---------------------------------------------------------------------------
# Discriminator feature matching
# ---------------------------------------------------------------------------


def discriminator_feature_matching_loss(fake_features: Sequence[tf.Tensor], real_features: Sequence[tf.Tensor],
                                        channels: Sequence[int] = DISCRIMINATOR_CHANNELS):
    """Σ_l (1e3 / C_l²) · mean(|D_l(out) − D_l(gt)|) over the local-branch features.

    Args:
      fake_features, real_features: the discriminator's intermediate
        (post-activation) local-branch features for the output and the
        ground truth, shallow to deep, as sequences of NHWC tensors.
      channels: C_l of each feature, DISCRIMINATOR_CHANNELS by default.

    The real features are under stop_gradient (the official code detaches
    them): this term trains the generator only.
    """
    fake_features, real_features, channels = list(fake_features), list(real_features), list(channels)
    if not (len(fake_features) == len(real_features) == len(channels)) or not channels:
        raise ValueError(
            f"Need the same non-zero number of fake features, real features and channels, got "
            f"{len(fake_features)}, {len(real_features)} and {len(channels)}."
        )
    total = tf.constant(0.0, tf.float32)
    for fake, real, depth in zip(fake_features, real_features, channels):
        total += layer_weight(depth) * weighted_l1(fake, tf.stop_gradient(tf.cast(real, tf.float32)))
    return total
