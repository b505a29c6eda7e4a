"""GLCIC: networks against the spec sheet, local patches, phases, inference, and runs."""

import json

import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import experiment
from common import masks, patches
from reproductions.glcic import inference
from reproductions.glcic import model as model_lib
from reproductions.glcic import train_lib
from reproductions.glcic.paper import PAPER

CONFIGS = helpers.configs_dir("glcic")
def small_config(**kwargs):
    """The smoke config (configs/smoke.cfg), with `kwargs` changed."""
    return helpers.smoke_config("glcic", **kwargs)


def run_cli(*args):
    return helpers.run_cli("glcic", *args)


run_config = helpers.run_config


def first_batch(config, batch_size=4):
    return helpers.first_batch(train_lib, config, batch_size)


def trainable_count(layers):
    return sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)


def test_parameter_counts_match_the_spec_sheet():
    task = train_lib.build_task(train_lib.Config())
    assert train_lib.parameter_counts(task) == {"generator_params": 6_072_131,
                                                "discriminator_params": 45_063_681}
    layers = task.discriminator.layers
    assert trainable_count([l for l in layers if l.name.startswith("local_")]) == 19_253_248
    assert trainable_count([l for l in layers if l.name.startswith("global_")]) == 25_808_384
    assert trainable_count([task.discriminator.get_layer("logit")]) == 2_049


def test_completion_network_layers_dilations_and_receptive_field():
    network = model_lib.build_completion_network(channels=8)
    convs = [l for l in network.layers if isinstance(l, (keras.layers.Conv2D,
                                                         keras.layers.Conv2DTranspose))]
    assert len(convs) == 17
    assert [l.dilation_rate[0] for l in convs[6:10]] == [2, 4, 8, 16]
    assert all(l.dilation_rate[0] == 1 for l in convs[:6] + convs[10:])
    assert [l.strides[0] for l in convs] == [1, 2, 1, 2] + [1] * 8 + [2, 1, 2, 1, 1]
    assert isinstance(convs[12], keras.layers.Conv2DTranspose) and convs[12].kernel_size == (4, 4)
    assert model_lib.receptive_field(network) == 303
    undilated = keras.models.clone_model(network)
    for layer in undilated.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.dilation_rate[0] > 1:
            layer.dilation_rate = (1, 1)
    assert model_lib.receptive_field(undilated) == 95


def test_receptive_field_matches_the_gradient_footprint():
    # Averaging kernels keep every path alive; the footprint of one output
    # pixel's gradient on the input is its receptive field.
    network = model_lib.build_completion_network(channels=4)
    for layer in network.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(tf.ones_like(layer.kernel) / np.prod(layer.kernel.shape[:-1]))
    pre_sigmoid = keras.Model(network.input, network.get_layer("conv17").output)
    inputs = tf.Variable(tf.ones([1, 384, 384, 4]))
    widths = []
    for position in (192, 193, 194, 195):  # all alignments with the two upsamplings
        with tf.GradientTape() as tape:
            value = pre_sigmoid(inputs, training=False)[0, position, position, 0]
        rows = np.nonzero(np.abs(tape.gradient(value, inputs).numpy()[0]).sum(axis=(1, 2)))[0]
        widths.append(rows.max() - rows.min() + 1)
    assert max(widths) == model_lib.receptive_field(network) == 303


def test_completion_network_is_fully_convolutional():
    network = model_lib.build_completion_network(channels=4)
    output = network(tf.zeros([1, 52, 76, 4]), training=False)
    assert output.shape == (1, 52, 76, 3)
    assert float(tf.reduce_min(output)) >= 0.0 and float(tf.reduce_max(output)) <= 1.0


def test_discriminator_takes_global_and_local_images():
    discriminator = model_lib.build_discriminator(image_size=64, local_size=32, channels=4)
    logits = discriminator([tf.zeros([3, 64, 64, 3]), tf.zeros([3, 32, 32, 3])])
    assert logits.shape == (3, 1)
    with pytest.raises(ValueError, match="power of two"):
        train_lib.Config(image_size=200)


@pytest.mark.parametrize("config", [small_config(), train_lib.Config(cn_channels=4,
                                                                     d_channels=4)])
def test_local_patches_contain_the_hole_for_every_sample(config):
    batch = first_batch(config, batch_size=4)
    mask, size = batch["mask"].numpy(), config.local_size
    for i in range(4):
        hole = mask[i, ..., 0]
        rows, cols = np.nonzero(hole)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert config.hole_min <= height <= config.hole_max
        assert config.hole_min <= width <= config.hole_max
        assert hole.sum() == height * width  # one rectangle
        top, left = batch["fake_corner"][i].numpy()
        assert hole[top:top + size, left:left + size].sum() == hole.sum()
        real_top, real_left = batch["real_corner"][i].numpy()
        assert 0 <= real_top <= config.image_size - size
        assert 0 <= real_left <= config.image_size - size
    # Cropping in the graph cuts exactly those boxes, per sample.
    crops = patches.crop_patches(batch["mask"], batch["fake_corner"], size).numpy()
    assert np.array_equal(crops.sum(axis=(1, 2, 3)), mask.sum(axis=(1, 2, 3)))
    assert len({tuple(c) for c in batch["fake_corner"].numpy()}) > 1  # not one box per batch


def test_phase_boundaries():
    task = train_lib.build_task(small_config(completion_steps=3, discriminator_steps=2))
    assert [task.phase_at(s) for s in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    assert [task.phase_name(p) for p in range(3)] == ["completion", "discriminator", "joint"]


def trainable_values(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def changed(before, model):
    return any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_variables))


@pytest.mark.parametrize("phase, completion_moves, discriminator_moves", [
    (0, True, False), (1, False, True), (2, True, True)])
def test_each_phase_updates_only_its_networks(phase, completion_moves, discriminator_moves):
    keras.utils.set_random_seed(0)
    config = small_config(optimizer="adam", learning_rate=1e-3)
    task = train_lib.build_task(config)
    task.build_optimizers()
    batch = first_batch(config, batch_size=2)
    completion, discriminator = (trainable_values(task.completion),
                                 trainable_values(task.discriminator))
    losses = task.train_step(batch, phase)
    assert changed(completion, task.completion) == completion_moves
    assert changed(discriminator, task.discriminator) == discriminator_moves
    assert ("d_loss" in losses) == discriminator_moves
    assert ("adversarial" in losses) == (phase == 2)


def test_losses_match_a_hand_computation_on_the_composite():
    keras.utils.set_random_seed(1)
    config = small_config()
    task = train_lib.build_task(config)
    task.build_optimizers()
    task.mean_pixel.assign([0.4, 0.45, 0.5])
    batch = first_batch(config, batch_size=2)
    image, mask = batch["image"].numpy(), batch["mask"].numpy()
    target = (image + 1) / 2
    inputs = np.concatenate([(target - [0.4, 0.45, 0.5]) * (1 - mask), mask], axis=-1)
    output = task.completion(inputs, training=True).numpy()
    expected_mse = np.mean(mask * (output - target) ** 2)
    composite = mask * output + (1 - mask) * target

    def crops(images, corners):
        return np.stack([img[t:t + 32, l:l + 32] for img, (t, l) in zip(images, corners)])

    real = task.discriminator([image, crops(image, batch["real_corner"].numpy())],
                              training=True).numpy()
    fake_images = composite * 2 - 1
    fake = task.discriminator([fake_images, crops(fake_images, batch["fake_corner"].numpy())],
                              training=True).numpy()
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731  BCE(x, real) = softplus(-x)
    expected_d = 4e-4 * (np.mean(softplus(-real)) + np.mean(softplus(fake)))
    expected_adv = np.mean(softplus(-fake))

    losses = {k: float(v) for k, v in task.train_step(batch, phase=2).items()}
    assert losses["mse"] == pytest.approx(expected_mse, rel=1e-4)
    assert losses["d_loss"] == pytest.approx(expected_d, rel=1e-4)
    assert losses["adversarial"] == pytest.approx(expected_adv, rel=1e-4)
    assert losses["c_loss"] == pytest.approx(expected_mse + 4e-4 * expected_adv, rel=1e-4)


def test_three_phases_resume_in_the_right_phase_with_the_stored_mean_pixel(tmp_path):
    config = small_config(completion_steps=2, discriminator_steps=2)
    first = experiment.run(PAPER, config, run_config(tmp_path, num_steps=3))
    assert first.step == 3
    stored = tf.train.load_checkpoint(str(tmp_path / "checkpoints")).get_tensor(
        "mean_pixel/.ATTRIBUTES/VARIABLE_VALUE")
    assert stored.shape == (3,) and np.all((stored > 0.05) & (stored < 0.95))
    # Another --mean_pixel would change the networks' input: refused, the run untouched.
    with pytest.raises(ValueError, match=r"--mean_pixel: None -> \[0.1, 0.1, 0.1\]"):
        experiment.run(PAPER, small_config(completion_steps=2, discriminator_steps=2,
                                   mean_pixel=(0.1, 0.1, 0.1)),
                      run_config(tmp_path, num_steps=6))
    # The same settings resume with the stored mean pixel.
    resumed = experiment.run(PAPER, small_config(completion_steps=2, discriminator_steps=2),
                            run_config(tmp_path, num_steps=6))
    assert resumed.step == 6
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    np.testing.assert_array_equal(reader.get_tensor("mean_pixel/.ATTRIBUTES/VARIABLE_VALUE"),
                                  stored)
    assert reader.get_tensor("phase/.ATTRIBUTES/VARIABLE_VALUE") == 2
    assert [r["phase"] for r in helpers.train_records(tmp_path)] == [
        "completion", "completion", "discriminator", "discriminator", "joint", "joint"]


def test_given_mean_pixel_is_used(tmp_path):
    experiment.run(PAPER, small_config(mean_pixel=(0.25, 0.5, 0.75)), run_config(tmp_path, 1))
    stored = tf.train.load_checkpoint(str(tmp_path / "checkpoints")).get_tensor(
        "mean_pixel/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_allclose(stored, [0.25, 0.5, 0.75])


def test_mean_pixel_of_a_constant_folder(tmp_path):
    from PIL import Image

    from common import data as data_lib
    for i in range(3):
        Image.new("RGB", (80, 70), (51, 102, 204)).save(tmp_path / f"{i}.png")
    value = data_lib.mean_pixel(str(tmp_path), data_lib.CropPolicy(64, (64, 96)), 3)
    np.testing.assert_allclose(value, [0.2, 0.4, 0.8], atol=1e-4)  # resize weights: ~3e-5


@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
def test_inference_keeps_known_pixels_and_postprocessing_only_touches_the_hole(size):
    keras.utils.set_random_seed(2)
    task = train_lib.build_task(small_config())
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width] / max(size)
    image = np.stack([yy, xx, 0.5 * (yy + xx)], axis=-1).astype(np.float32)
    mask = np.zeros((height, width), np.float32)
    mask[20:40, 25:50] = 1
    plain = inference.complete(task, image, mask, postprocess_output=False)
    blended = inference.complete(task, image, mask)
    assert plain.shape == blended.shape == (height, width, 3)
    known = mask == 0
    np.testing.assert_array_equal(plain[known], image[known])
    np.testing.assert_array_equal(blended[known], image[known])
    assert not np.allclose(plain[~known], blended[~known], atol=1 / 255)
    # Poisson blending pulls the hole towards its smooth surroundings.
    assert np.abs(blended - image)[~known].mean() < np.abs(plain - image)[~known].mean()
    with pytest.raises(ValueError, match="mask is"):
        inference.complete(task, image, mask[:-1])


def test_cli_dry_run_prints_parameter_counts():
    result = run_cli(f"--flagfile={CONFIGS}/paper.cfg", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "generator_params": 6_072_131, "discriminator_params": 45_063_681}


def test_cli_smoke_run_goes_through_all_three_phases(tmp_path):
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "entering phase discriminator" in result.stderr
    assert "entering phase joint" in result.stderr
    assert [r["phase"] for r in helpers.train_records(tmp_path)] == [
        "completion", "completion", "discriminator", "discriminator", "joint", "joint"]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")
    assert (tmp_path / "samples" / "step_00000006.png").exists()
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}/other",
                     "--hole_max=40")
    assert result.returncode == 1 and "--hole_max" in result.stderr


def test_inference_can_resize_to_a_multiple_of_four_as_inpaint_lua_does(monkeypatch):
    keras.utils.set_random_seed(2)
    task = train_lib.build_task(small_config())
    seen = []
    original = task.predict
    monkeypatch.setattr(task, "predict", lambda batch: seen.append(
        np.asarray(batch["mask"]).shape) or original(batch))
    image = np.random.default_rng(0).uniform(0, 1, (70, 91, 3)).astype(np.float32)
    mask = np.zeros((70, 91), np.float32)
    mask[20:40, 25:50] = 1
    resized = inference.complete(task, image, mask, postprocess_output=False, fit="resize")
    padded = inference.complete(task, image, mask, postprocess_output=False, fit="pad")
    # inpaint.lua: round(70 / 4) * 4 = 72 and round(91 / 4) * 4 = 92; padding goes up to 72 x 92.
    assert seen == [(1, 72, 92, 1), (1, 72, 92, 1)]
    for result in (resized, padded):
        assert result.shape == image.shape
        np.testing.assert_array_equal(result[mask == 0], image[mask == 0])
    assert not np.allclose(resized, padded)
    with pytest.raises(ValueError, match="--fit"):
        inference.complete(task, image, mask, fit="crop")


@pytest.mark.parametrize("mask_type", ["strokes", "matched_strokes"])
def test_stroke_holes_get_the_local_patch_on_their_bounding_box(mask_type):
    config = helpers.smoke_config("glcic", mask_type=mask_type)
    make = train_lib.example_fn(config, 0, 2)
    image = tf.zeros([config.image_size, config.image_size, 3])
    areas = []
    for i in range(6):
        example = make(image, tf.constant([i, 7]), 0)
        mask = example["mask"]
        np.testing.assert_array_equal(mask, masks.strokes_by_area_mask(
            tf.random.experimental.stateless_fold_in(tf.constant([i, 7]), 0), config.image_size,
            depth_matched=mask_type == "matched_strokes"))
        assert mask.shape == (config.image_size, config.image_size, 1)
        areas.append(float(tf.reduce_mean(mask)))
        np.testing.assert_array_equal(example["fake_corner"],
                                      patches.hole_centered_corner(mask, config.local_size))
    assert len(set(areas)) == 6 and max(areas) <= 0.62  # strokes, not one box size
    box = helpers.smoke_config("glcic")
    assert box.mask_type == "box"
