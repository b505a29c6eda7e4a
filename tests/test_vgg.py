"""Tests for common/vgg.py: tap names, preprocessing, freezing, and the real VGG16 weights."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import vgg

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("INPAINTING_SHARED_DATA", os.path.join(REPO_ROOT, "..", "shared", "data"))
VGG16_WEIGHTS = os.path.join(SHARED_DATA, "weights", "vgg16_imagenet_notop.weights.h5")

needs_vgg16_weights = pytest.mark.skipif(
    not os.path.isfile(VGG16_WEIGHTS),
    reason=f"real VGG16 weights not found at {VGG16_WEIGHTS} (set INPAINTING_SHARED_DATA to the shared data folder)",
)


def _random_images(seed, shape=(2, 32, 32, 3)):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, size=shape), dtype=tf.float32)


@pytest.fixture(scope="module")
def vgg16_random():
    return vgg.FeatureExtractor("vgg16", ("conv1_1", "conv2_1", "conv3_1"), weights=None)


def test_vgg16_taps_have_expected_channels_and_resolution(vgg16_random):
    features = vgg16_random(_random_images(0))
    assert list(features) == ["conv1_1", "conv2_1", "conv3_1"]
    assert features["conv1_1"].shape == (2, 32, 32, 64)
    assert features["conv2_1"].shape == (2, 16, 16, 128)
    assert features["conv3_1"].shape == (2, 8, 8, 256)
    assert [vgg16_random.channels(n) for n in vgg16_random.layer_names] == [64, 128, 256]
    assert all(f.dtype == tf.float32 for f in features.values())


def test_only_layers_up_to_the_deepest_tap_are_kept(vgg16_random):
    names = [layer.name for layer in vgg16_random.vgg_model.layers]
    assert names[-1] == "block3_conv1"
    assert "block3_conv2" not in names


def test_vgg19_relu5_1():
    extractor = vgg.FeatureExtractor("vgg19", ("relu1_1", "relu5_1"), weights=None)
    features = extractor(_random_images(1))
    assert features["relu5_1"].shape == (2, 2, 2, 512)  # 1/16 of 32
    assert extractor.channels("relu5_1") == 512
    # DMFN's per-layer weight 1e3 / C^2.
    assert 1e3 / extractor.channels("relu1_1") ** 2 == pytest.approx(0.2441, abs=1e-4)


def test_conv_and_relu_names_map_to_the_same_keras_layer():
    assert vgg.keras_layer_name("conv3_1") == vgg.keras_layer_name("relu3_1") == "block3_conv1"
    assert vgg.keras_layer_name("relu5_4", "vgg19") == "block5_conv4"


def test_taps_are_the_post_relu_keras_outputs(vgg16_random):
    images = _random_images(2)
    features = vgg16_random(images)
    reference = keras.Model(
        vgg16_random.vgg_model.input, vgg16_random.vgg_model.get_layer("block2_conv1").output
    )
    expected = reference(vgg.caffe_preprocess(images))
    np.testing.assert_allclose(features["conv2_1"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert float(tf.reduce_min(features["conv1_1"])) >= 0.0  # ReLU already applied


@pytest.mark.parametrize(
    "arch, layers, match",
    [
        ("vgg16", ("conv6_1",), "Valid names"),
        ("vgg16", ("conv3_4",), "Valid names"),  # only VGG19 has a fourth conv
        ("vgg16", ("pool1",), "Valid names"),
        ("vgg16", ("conv2_1", "conv1_1"), "ordered"),
        ("vgg16", ("conv1_1", "relu1_1"), "unique"),
        ("vgg16", "conv1_1", "sequence"),
        ("vgg16", (), "non-empty"),
        ("vgg13", ("conv1_1",), "arch"),
    ],
)
def test_bad_layers_and_arch_are_rejected(arch, layers, match):
    with pytest.raises(ValueError, match=match):
        vgg.FeatureExtractor(arch, layers, weights=None)


def test_unknown_layer_error_lists_valid_names():
    with pytest.raises(ValueError) as error:
        vgg.FeatureExtractor("vgg19", ("conv9_9",), weights=None)
    assert "relu5_4" in str(error.value) and "conv1_1" in str(error.value)


def test_missing_weights_file_names_the_file(tmp_path):
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError) as error:
        vgg.FeatureExtractor("vgg16", ("conv1_1",), weights=missing)
    assert missing in str(error.value)
    assert ".weights.h5" in str(error.value) and "include_top=False" in str(error.value)


def test_channels_of_an_unrequested_layer_is_an_error(vgg16_random):
    with pytest.raises(ValueError, match="conv4_1"):
        vgg16_random.channels("conv4_1")


def test_preprocessing_matches_keras_preprocess_input():
    images = _random_images(3)
    expected = keras.applications.vgg16.preprocess_input((images.numpy() + 1.0) * 127.5)
    np.testing.assert_allclose(vgg.caffe_preprocess(images).numpy(), expected, rtol=1e-6, atol=1e-4)


def test_no_trainable_variables_even_inside_a_model(vgg16_random):
    assert vgg16_random.trainable_variables == []
    assert vgg16_random.vgg_model.trainable_variables == []

    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same")
    model = keras.Model(inputs, vgg16_random(conv(inputs)))
    assert len(model.trainable_variables) == 2  # the Conv2D kernel and bias only
    assert model.non_trainable_variables == []
    # GAN code toggles `trainable` on whole models; that must not unfreeze the VGG.
    model.trainable = True
    vgg16_random.trainable = True
    assert vgg16_random.vgg_model.trainable_variables == []
    assert len(model.trainable_variables) == 2


def test_checkpoint_of_an_enclosing_model_does_not_store_vgg(vgg16_random, tmp_path):
    class Holder(keras.Model):
        def __init__(self, extractor):
            super().__init__()
            self.conv = keras.layers.Conv2D(3, 3, padding="same")
            self.extractor = extractor

        def call(self, images):
            return self.extractor(self.conv(images))

    holder = Holder(vgg16_random)
    holder(_random_images(4))
    path = tf.train.Checkpoint(model=holder).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path)]
    assert any("conv" in name for name in saved)
    assert not any("block" in name or "extractor" in name for name in saved), saved


def test_gradient_reaches_the_image_but_never_the_vgg_weights(vgg16_random):
    images = tf.Variable(_random_images(5))
    vgg_weights = vgg16_random.vgg_model.weights
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_mean(tf.square(f)) for f in vgg16_random(images).values()])
    image_grad, *weight_grads = tape.gradient(loss, [images] + vgg_weights)
    assert float(tf.reduce_max(tf.abs(image_grad))) > 0.0
    assert all(g is None for g in weight_grads)


def test_optimizer_step_changes_the_model_but_not_the_vgg(vgg16_random):
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same")
    features = vgg16_random(conv(inputs))
    model = keras.Model(inputs, features["conv3_1"])
    optimizer = keras.optimizers.Adam(1e-2)
    vgg_before = [w.numpy().copy() for w in vgg16_random.vgg_model.weights]
    conv_before = conv.kernel.numpy().copy()

    @tf.function
    def train_step(images, targets):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(images) - targets))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    train_step(_random_images(6), tf.zeros([2, 8, 8, 256]))
    assert not np.allclose(conv.kernel.numpy(), conv_before)
    for before, after in zip(vgg_before, vgg16_random.vgg_model.weights):
        np.testing.assert_array_equal(after.numpy(), before)


def test_mixed_precision_inputs_give_float32_outputs():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        extractor = vgg.FeatureExtractor("vgg16", ("conv1_1", "conv2_1"), weights=None)
        assert extractor.vgg_model.compute_dtype == "float16"
        features = extractor(tf.cast(_random_images(7), tf.float16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(f.dtype == tf.float32 for f in features.values())
    assert all(np.all(np.isfinite(f.numpy())) for f in features.values())


def test_get_config_round_trip(vgg16_random):
    config = vgg16_random.get_config()
    assert config["arch"] == "vgg16" and config["layers"] == ["conv1_1", "conv2_1", "conv3_1"]
    rebuilt = vgg.FeatureExtractor.from_config(config)
    assert rebuilt.layer_names == vgg16_random.layer_names


@pytest.fixture(scope="module")
def natural_image():
    """A real photo from the shared data, resized to 64x64, in [-1, 1]."""
    files = sorted(glob.glob(os.path.join(SHARED_DATA, "faces", "*.jpg")))
    files += sorted(glob.glob(os.path.join(SHARED_DATA, "scenes", "train", "*.jpg")))
    if not files:
        pytest.skip(f"no natural images under {SHARED_DATA}")
    image = tf.io.decode_jpeg(tf.io.read_file(files[0]), channels=3)
    image = tf.image.resize(tf.cast(image, tf.float32), (64, 64), antialias=True)
    return image[tf.newaxis] / 127.5 - 1.0


@needs_vgg16_weights
def test_real_vgg16_features_of_a_natural_image(natural_image):
    extractor = vgg.FeatureExtractor("vgg16", ("conv1_1", "conv2_1", "conv3_1"), weights=VGG16_WEIGHTS)
    features = extractor(natural_image)
    again = extractor(tf.identity(natural_image))
    for name, value in features.items():
        value = value.numpy()
        assert np.isfinite(value).all(), name
        assert np.mean(value > 0) > 0.05, name  # a real share of active units
        assert value.std() > 1.0, name  # Caffe-scale activations, not a degenerate map
        np.testing.assert_array_equal(value, again[name].numpy())
    # The features must depend on the image: a flipped photo differs.
    flipped = extractor(tf.image.flip_left_right(natural_image))
    assert not np.allclose(flipped["conv3_1"].numpy(), features["conv3_1"].numpy())


@needs_vgg16_weights
def test_real_vgg16_matches_keras_application_directly(natural_image):
    extractor = vgg.FeatureExtractor("vgg16", ("conv2_1",), weights=VGG16_WEIGHTS)
    full = keras.applications.VGG16(include_top=False, weights=VGG16_WEIGHTS, input_shape=(None, None, 3))
    reference = keras.Model(full.input, full.get_layer("block2_conv1").output)
    rgb_255 = (natural_image.numpy() + 1.0) * 127.5
    expected = reference(keras.applications.vgg16.preprocess_input(rgb_255))
    np.testing.assert_allclose(extractor(natural_image)["conv2_1"].numpy(), expected.numpy(), rtol=1e-4, atol=1e-3)


def test_random_weights_are_a_caveat_of_the_run():
    assert vgg.random_weights_caveat("vgg16", "/some/vgg16.weights.h5") == ""
    assert vgg.random_weights_caveat("vgg19", "imagenet") == ""
    caveat = vgg.random_weights_caveat("vgg19", None)
    assert "random VGG19 weights" in caveat and "--vgg_weights=none" in caveat


def test_a_file_that_is_not_vgg_weights_is_a_user_error(tmp_path):
    from common.errors import UserError

    path = tmp_path / "vgg16.weights.h5"
    path.write_text("not an HDF5 file")
    with pytest.raises(UserError, match="does not fit the VGG16 convolutional base"):
        vgg.FeatureExtractor("vgg16", ("conv1_1",), weights=str(path))
