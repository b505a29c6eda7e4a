"""Tests for reproductions/dmfn/losses.py against values worked out by hand on tiny tensors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import losses as common_losses
from common import vgg
from reproductions.dmfn import losses
from reproductions.dmfn import train_lib


def _t(values):
    return tf.constant(np.asarray(values, dtype=np.float32))


def _const(value, shape):
    return tf.fill(shape, tf.constant(value, tf.float32))


# ---------------------------------------------------------------------------
# Weights and pixel loss
# ---------------------------------------------------------------------------


def test_layer_weight_is_1e3_over_channels_squared():
    assert losses.layer_weight(64) == 0.244140625
    assert losses.layer_weight(128) == 0.06103515625
    assert losses.layer_weight(512) == 0.003814697265625
    assert losses.layer_weight(np.int64(256)) == 0.0152587890625


@pytest.mark.parametrize("bad", [0, -64, 64.0, True, "64", None])
def test_layer_weight_rejects_bad_channels(bad):
    with pytest.raises(ValueError, match="channels"):
        losses.layer_weight(bad)


def test_official_constants():
    config = train_lib.Config()  # the loss weights of the official configs/*.yaml
    assert (config.pixel_weight, config.feature_weight, config.align_weight) == (1.0, 25.0, 1.0)
    assert (config.gan_weight, config.dfm_weight) == (0.003, 5.0)
    assert losses.VGG_LAYERS == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert losses.GUIDED_LAYERS == ("relu1_1", "relu2_1")
    assert losses.DISCRIMINATOR_CHANNELS == (64, 128, 256, 512, 512)


def test_pixel_loss_is_l1_mean():
    output = _t([[[[1.0], [-2.0]], [[0.5], [0.0]]]])  # [1, 2, 2, 1]
    target = _t([[[[0.0], [0.0]], [[-0.5], [0.0]]]])
    # (1 + 2 + 1 + 0) / 4
    assert float(losses.pixel_loss(output, target)) == pytest.approx(1.0)


def test_pixel_loss_casts_float16():
    output = tf.cast(_t([[[[1.0, 3.0]]]]), tf.float16)
    loss = losses.pixel_loss(output, tf.zeros_like(output))
    assert loss.dtype == tf.float32 and float(loss) == pytest.approx(2.0)


# ---------------------------------------------------------------------------
# Self-guided weight map
# ---------------------------------------------------------------------------

# Per-pixel differences d of a 4x4 image; channel 0 holds +d and channel 1
# holds -d, so the channel mean of the squared error is E = d^2.
DIFF = np.array([[0, 1, 2, 0],
                 [1, 1, 0, 0],
                 [0, 0, 1, 2],
                 [0, 0, 1, 1]], np.float32)
E_OVER_MAX = DIFF**2 / 4.0  # max E = 4
# 2x2 averages of E / max, worked out block by block.
E_OVER_MAX_HALF = np.array([[(0 + 1 + 1 + 1) / 16, (4 + 0 + 0 + 0) / 16],
                            [(0 + 0 + 0 + 0) / 16, (1 + 4 + 1 + 1) / 16]], np.float32)


def _error_pair(scale=1.0):
    target = np.random.default_rng(0).uniform(-0.3, 0.3, size=(4, 4, 2)).astype(np.float32)
    output = target + scale * np.stack([DIFF, -DIFF], axis=-1)
    return output, target


def test_self_guided_map_by_hand():
    out_a, target_a = _error_pair(1.0)
    out_b, target_b = _error_pair(0.1)  # the max is per image: same Ē at another scale
    output, target = _t([out_a, out_b]), _t([target_a, target_b])

    error_map = losses.normalized_error_map(output, target)
    assert error_map.shape == (2, 4, 4, 1)
    np.testing.assert_allclose(error_map[..., 0], [E_OVER_MAX, E_OVER_MAX], atol=1e-5)

    full = losses.self_guided_weight_map(output, target)
    np.testing.assert_allclose(full[..., 0], [1 + E_OVER_MAX] * 2, atol=1e-5)
    np.testing.assert_allclose(losses.guidance_for_level(error_map, 0), full)
    half = losses.guidance_for_level(error_map, 1)
    assert half.shape == (2, 2, 2, 1)
    np.testing.assert_allclose(half[..., 0], [1 + E_OVER_MAX_HALF] * 2, atol=1e-5)


def test_guidance_maps_follow_the_vgg_resolution():
    output, target = (_t([x]) for x in _error_pair())
    maps = losses.guidance_maps(output, target)
    assert list(maps) == ["relu1_1", "relu2_1"]
    np.testing.assert_allclose(maps["relu1_1"][0, ..., 0], 1 + E_OVER_MAX, atol=1e-5)
    np.testing.assert_allclose(maps["relu2_1"][0, ..., 0], 1 + E_OVER_MAX_HALF, atol=1e-5)
    assert losses.guidance_maps(output, target, ("relu3_1",))["relu3_1"].shape == (1, 1, 1, 1)


def test_identical_images_give_a_map_of_ones():
    image = tf.random.stateless_uniform([2, 4, 4, 3], seed=(1, 2), minval=-1, maxval=1)
    weight_map = losses.self_guided_weight_map(image, image)
    assert np.all(np.isfinite(weight_map))
    np.testing.assert_array_equal(weight_map, np.ones([2, 4, 4, 1], np.float32))
    np.testing.assert_array_equal(losses.guidance_for_level(losses.normalized_error_map(image, image), 1),
                                  np.ones([2, 2, 2, 1], np.float32))


def test_no_gradient_flows_through_the_map():
    output, target = (_t([x]) for x in _error_pair())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([output, target])
        weight_map = losses.self_guided_weight_map(output, target)
        total = tf.reduce_sum(weight_map)
    for source in (output, target):
        gradient = tape.gradient(total, source)
        assert gradient is None or not np.any(gradient)


@pytest.mark.parametrize("level", [-1, 1.0, True, None])
def test_guidance_for_level_rejects_bad_levels(level):
    with pytest.raises(ValueError, match="level"):
        losses.guidance_for_level(tf.zeros([1, 4, 4, 1]), level)


def test_guidance_maps_reject_non_vgg_names():
    with pytest.raises(ValueError, match="tap name"):
        losses.guidance_maps(tf.zeros([1, 4, 4, 3]), tf.zeros([1, 4, 4, 3]), ("block1_conv1",))


# ---------------------------------------------------------------------------
# VGG feature losses
# ---------------------------------------------------------------------------

CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}


def test_self_guided_regression_loss_by_hand():
    out = {"relu1_1": _const(1.0, [1, 2, 2, 64]), "relu2_1": _const(2.0, [1, 1, 1, 128])}
    target = {"relu1_1": _const(0.0, [1, 2, 2, 64]), "relu2_1": _const(0.5, [1, 1, 1, 128])}
    guidance = {"relu1_1": _t([[[[1.0], [2.0]], [[1.5], [1.0]]]]), "relu2_1": _const(1.5, [1, 1, 1, 1])}
    # relu1_1: mean(|G*1 - G*0|) = (1 + 2 + 1.5 + 1) / 4 = 1.375, times 1e3/64^2 = 0.244140625
    # relu2_1: |1.5*2 - 1.5*0.5| = 2.25, times 1e3/128^2 = 0.06103515625
    expected = 1.375 * 0.244140625 + 2.25 * 0.06103515625  # 0.4730224609375
    loss = losses.self_guided_regression_loss(out, target, guidance, CHANNELS)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_feature_matching_loss_by_hand():
    relu3_out = tf.concat([_const(1.0, [1, 1, 1, 256]), _const(3.0, [1, 1, 1, 256])], axis=2)
    out = {"relu3_1": relu3_out, "relu4_1": _const(4.0, [1, 1, 1, 512]), "relu1_1": _const(9.0, [1, 1, 1, 64])}
    target = {"relu3_1": _const(0.0, [1, 1, 2, 256]), "relu4_1": _const(1.0, [1, 1, 1, 512]),
              "relu1_1": _const(0.0, [1, 1, 1, 64])}
    # relu3_1: mean |[1, 3] - 0| = 2, times 1e3/256^2; relu4_1: 3, times 1e3/512^2; relu1_1 not listed.
    expected = 2 * 0.0152587890625 + 3 * 0.003814697265625  # 0.041961669921875
    loss = losses.feature_matching_loss(out, target, ("relu3_1", "relu4_1"), CHANNELS)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_feature_losses_treat_target_features_as_constants():
    out, target = _const(1.0, [1, 2, 2, 64]), _const(0.0, [1, 2, 2, 64])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([out, target])
        loss = losses.feature_matching_loss({"relu1_1": out}, {"relu1_1": target}, ("relu1_1",), CHANNELS)
    assert np.all(tape.gradient(loss, out) > 0)
    gradient = tape.gradient(loss, target)
    assert gradient is None or not np.any(gradient)


def test_feature_losses_reject_missing_layers_and_wrong_channels():
    features = {"relu3_1": tf.zeros([1, 1, 1, 256])}
    with pytest.raises(ValueError, match="relu4_1"):
        losses.feature_matching_loss(features, features, ("relu3_1", "relu4_1"), CHANNELS)
    with pytest.raises(ValueError, match="channels"):
        losses.feature_matching_loss(features, features, ("relu3_1",), {"relu3_1": 128})
    with pytest.raises(ValueError, match="sequence"):
        losses.feature_matching_loss(features, features, "relu3_1", CHANNELS)


# ---------------------------------------------------------------------------
# Coordinate grids and the alignment loss
# ---------------------------------------------------------------------------


def test_coordinate_grids_correct():
    x_map, y_map = losses.coordinate_grids(2, 4)
    np.testing.assert_array_equal(x_map, [[-1.0, -0.5, 0.0, 0.5]] * 2)  # varies along columns
    np.testing.assert_array_equal(y_map, [[-1.0] * 4, [0.0] * 4])  # varies along rows
    x_map, y_map = losses.coordinate_grids(5, 7)
    for grid in (x_map, y_map):
        assert grid.shape == (5, 7) and grid.dtype == tf.float32
        assert np.min(grid) == -1.0 and np.max(grid) < 1.0


def test_coordinate_grids_official_bug_has_y_equal_x():
    x_map, y_map = losses.coordinate_grids(4, 4, official=True)
    np.testing.assert_array_equal(y_map, x_map)
    np.testing.assert_array_equal(x_map, [[-1.0, -0.5, 0.0, 0.5]] * 4)


@pytest.mark.parametrize("height, width", [(0, 4), (4, -1), (2.0, 4), (None, 4)])
def test_coordinate_grids_reject_bad_sizes(height, width):
    with pytest.raises(ValueError):
        losses.coordinate_grids(height, width)


def test_centroid_of_a_2x2_map_by_hand():
    features = _t([[[[3.0], [1.0]], [[0.0], [0.0]]]])  # [1, 2, 2, 1]; grid coordinates are -1 and 0
    eps = 1e-7
    total = 4.0 + 4 * eps
    x_center = (3 * -1.0 + 1 * 0.0 + eps * (-1.0 + 0.0 - 1.0 + 0.0)) / total  # ~ -0.75
    y_center = ((3 + 1) * -1.0 + eps * (-1.0 - 1.0)) / total  # ~ -1.0
    centroids = losses.feature_centroids(features)
    assert centroids.shape == (1, 1, 2)
    np.testing.assert_allclose(centroids[0, 0], [x_center, y_center], rtol=1e-6)
    # The official grid reports the x centroid twice.
    np.testing.assert_allclose(losses.feature_centroids(features, official_grid=True)[0, 0],
                               [x_center, x_center], rtol=1e-6)


def test_align_loss_by_hand():
    pred = _t([[[[3.0], [1.0]], [[0.0], [0.0]]]])  # centroid ~ (-0.75, -1)
    target = _t([[[[0.0], [0.0]], [[0.0], [1.0]]]])  # centroid ~ (0, 0)
    # mean over N*C*2 = 2 of the squared differences: (0.75^2 + 1^2) / 2
    assert float(losses.align_loss(pred, target)) == pytest.approx(0.78125, rel=1e-5)


def _blob(row, col, size=8, channels=3):
    image = np.zeros([1, size, size, channels], np.float32)
    image[0, row:row + 2, col:col + 2, :] = 5.0
    return tf.constant(image)


def test_align_loss_sees_shifts_along_both_axes():
    base, right, down = _blob(2, 2), _blob(2, 4), _blob(4, 2)
    assert float(losses.align_loss(base, base)) == 0.0
    assert float(losses.align_loss(right, base)) > 1e-3
    assert float(losses.align_loss(down, base)) > 1e-3
    # By symmetry, equal shifts along either axis cost the same.
    assert float(losses.align_loss(right, base)) == pytest.approx(float(losses.align_loss(down, base)))


def test_official_grid_is_blind_to_vertical_shifts():
    base, right, down = _blob(2, 2), _blob(2, 4), _blob(4, 2)
    assert float(losses.align_loss(down, base, official_grid=True)) < 1e-10
    assert float(losses.align_loss(right, base, official_grid=True)) > 1e-3


def test_align_loss_gradient_reaches_predictions_only():
    pred, target = _blob(2, 2) + 0.1, _blob(4, 4)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([pred, target])
        loss = losses.align_loss(pred, target)
    assert np.any(tape.gradient(loss, pred))
    gradient = tape.gradient(loss, target)
    assert gradient is None or not np.any(gradient)


# ---------------------------------------------------------------------------
# Discriminator feature matching and RaGAN
# ---------------------------------------------------------------------------


def _discriminator_features(offset):
    return [_const(offset * (i + 1), [1, 2, 2, c]) for i, c in enumerate(losses.DISCRIMINATOR_CHANNELS)]


def test_discriminator_feature_matching_by_hand():
    fake, real = _discriminator_features(1.0), _discriminator_features(0.0)
    # |difference| = 1, 2, 3, 4, 5 on layers with 64, 128, 256, 512, 512 channels.
    expected = (1 * 0.244140625 + 2 * 0.06103515625 + 3 * 0.0152587890625
                + 4 * 0.003814697265625 + 5 * 0.003814697265625)  # 0.446319580078125
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(fake + real)
        loss = losses.discriminator_feature_matching_loss(fake, real)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    for tensor in real:
        gradient = tape.gradient(loss, tensor)
        assert gradient is None or not np.any(gradient)
    assert np.all(tape.gradient(loss, fake[0]) > 0)


def test_discriminator_feature_matching_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same"):
        losses.discriminator_feature_matching_loss(_discriminator_features(1.0)[:4], _discriminator_features(0.0))
    with pytest.raises(ValueError, match="same"):
        losses.discriminator_feature_matching_loss([], [], ())


def test_ragan_losses_are_the_common_ones_and_symmetric():
    assert losses.ragan_generator_loss is common_losses.ragan_generator_loss
    assert losses.ragan_discriminator_loss is common_losses.ragan_discriminator_loss
    real = _t([[1.5], [0.2], [-0.3], [2.0]])
    fake = _t([[-1.0], [0.4], [0.1], [-2.5]])
    generator = losses.ragan_generator_loss(real, fake)
    np.testing.assert_allclose(generator, losses.ragan_discriminator_loss(fake, real), rtol=1e-6)
    # DMFN's weighted adversarial term.
    np.testing.assert_allclose(train_lib.Config().gan_weight * generator, 0.003 * float(generator),
                               rtol=1e-6)


# ---------------------------------------------------------------------------
# vgg_terms on a real (randomly initialised) VGG19
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg19():
    # No VGG19 ImageNet weights exist on the test machines: random weights
    # exercise the plumbing (shapes, taps, composition), not the values.
    keras.utils.set_random_seed(0)
    return vgg.FeatureExtractor("vgg19", losses.VGG_LAYERS, weights=None)


def _images(seed):
    return tf.random.stateless_uniform([2, 32, 32, 3], seed=(seed, 0), minval=-1, maxval=1)


def test_vgg_terms_of_identical_images_are_zero(vgg19):
    image = _images(1)
    terms = losses.vgg_terms(vgg19, image, image)
    assert sorted(terms) == ["align", "feature_matching", "self_guided"]
    for name, value in terms.items():
        assert float(value) == 0.0, name


def test_vgg_terms_match_the_individual_functions(vgg19):
    output, target = _images(2), _images(3)
    terms = losses.vgg_terms(vgg19, output, target)
    for name, value in terms.items():
        assert float(value) > 0.0, name

    out_features, target_features = vgg19(output), vgg19(target)
    channels = {name: vgg19.channels(name) for name in losses.VGG_LAYERS}
    error_map = losses.normalized_error_map(output, target)
    guidance = {"relu1_1": losses.guidance_for_level(error_map, 0),
                "relu2_1": losses.guidance_for_level(error_map, 1)}
    expected = {
        "self_guided": losses.self_guided_regression_loss(out_features, target_features, guidance, channels),
        "feature_matching": losses.feature_matching_loss(
            out_features, target_features, ("relu3_1", "relu4_1", "relu5_1"), channels),
        "align": losses.align_loss(out_features["relu4_1"], target_features["relu4_1"]),
    }
    for name in expected:
        np.testing.assert_allclose(terms[name], expected[name], rtol=1e-5, err_msg=name)


def test_vgg_terms_gradient_reaches_the_output_only(vgg19):
    output, target = _images(4), _images(5)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([output, target])
        terms = losses.vgg_terms(vgg19, output, target)
        total = tf.add_n(list(terms.values()))
    assert np.any(tape.gradient(total, output))
    gradient = tape.gradient(total, target)
    assert gradient is None or not np.any(gradient)


def test_vgg_terms_needs_the_taps():
    extractor = vgg.FeatureExtractor("vgg19", ("relu1_1", "relu2_1"), weights=None)
    with pytest.raises(ValueError, match="relu3_1"):
        losses.vgg_terms(extractor, _images(1), _images(2))


# ---------------------------------------------------------------------------
# Graph mode and XLA
# ---------------------------------------------------------------------------


def test_losses_run_under_xla_with_dynamic_shapes_in_graph_mode():
    output, target = (_t([x]) for x in _error_pair())
    relu4_out, relu4_target = _blob(2, 2), _blob(4, 3)
    fake, real = _discriminator_features(1.0), _discriminator_features(0.0)

    def all_terms(output, target, relu4_out, relu4_target):
        maps = losses.guidance_maps(output, target)
        features = {"relu1_1": tf.tile(output[..., :1], [1, 1, 1, 64]),
                    "relu2_1": tf.tile(output[:, ::2, ::2, :1], [1, 1, 1, 128])}
        targets = {name: tf.zeros_like(f) for name, f in features.items()}
        return tf.stack([
            losses.pixel_loss(output, target),
            losses.self_guided_regression_loss(features, targets, maps, CHANNELS),
            losses.align_loss(relu4_out, relu4_target),
            losses.discriminator_feature_matching_loss(fake, real),
        ])

    eager = all_terms(output, target, relu4_out, relu4_target)
    xla = tf.function(all_terms, jit_compile=True)(output, target, relu4_out, relu4_target)
    np.testing.assert_allclose(xla, eager, rtol=1e-5)
    # Unknown spatial sizes: the coordinate grid is built from the dynamic shape.
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    dynamic = tf.function(losses.align_loss, input_signature=[spec, spec])
    np.testing.assert_allclose(dynamic(relu4_out, relu4_target), eager[2], rtol=1e-5)


def test_vgg_terms_under_xla_match_eager(vgg19):
    output, target = _images(6), _images(7)
    eager = losses.vgg_terms(vgg19, output, target)
    xla = tf.function(lambda o, t: losses.vgg_terms(vgg19, o, t), jit_compile=True)(output, target)
    for name in eager:
        np.testing.assert_allclose(xla[name], eager[name], rtol=1e-4, err_msg=name)
