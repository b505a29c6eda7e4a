"""DMFN: networks against the spec sheet, masks and boxes, the loss composition, runs.

No VGG19 ImageNet weights can be had offline: these tests use a random VGG19
(weights=None); the losses themselves are checked by hand in test_dmfn_losses.py.
"""

import json

import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common import errors, masks, model_utils
from reproductions.dmfn import model as model_lib
from reproductions.dmfn import train_lib

CONFIGS = helpers.configs_dir("dmfn")
def small_config(**kwargs):
    """The smoke config (configs/smoke.cfg), with `kwargs` changed."""
    return helpers.smoke_config("dmfn", **kwargs)


def run_cli(*args):
    return helpers.run_cli("dmfn", *args)


run_config = helpers.run_config


def first_batch(config, batch_size=4):
    return helpers.first_batch(train_lib, config, batch_size)


def one_block_params(block):
    inputs = keras.Input((16, 16, 256))
    return sum(int(np.prod(w.shape)) for w in keras.Model(inputs, block(inputs, "b")).trainable_weights)


def test_parameter_counts_match_the_spec_sheet():
    assert one_block_params(model_lib.dmfb_official) == 885_312
    assert one_block_params(model_lib.dmfb_paper) == 471_808
    task = train_lib.build_task(train_lib.Config(vgg_weights=None))
    assert train_lib.parameter_counts(task) == {"generator_params": 9_037_443,
                                                "discriminator_params": 36_673_025}
    paper = train_lib.build_task(train_lib.Config(vgg_weights=None, dmfb="paper"))
    assert train_lib.parameter_counts(paper)["generator_params"] == 9_037_443 - 8 * (
        885_312 - 471_808)


def test_block_variants_differ_as_the_paper_and_code_do():
    official = model_lib.build_generator(num_blocks=1, dmfb="official", channels=8)
    paper = model_lib.build_generator(num_blocks=1, dmfb="paper", channels=8)
    assert official.get_layer("dmfb1_fuse").kernel_size == (3, 3)
    assert paper.get_layer("dmfb1_fuse").kernel_size == (1, 1)
    assert [official.get_layer(f"dmfb1_d{r}").dilation_rate[0] for r in (1, 2, 4, 8)] == [1, 2, 4, 8]
    second_column = ("dmfb1_k2", "dmfb1_k4", "dmfb1_k8")
    assert all(isinstance(paper.get_layer(n), keras.layers.Conv2D) for n in second_column)
    # Instance normalisation has no parameters.
    norms = [l for l in official.layers if isinstance(l, model_utils.InstanceNormalization)]
    assert norms and all(not l.weights for l in norms)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_only_batch_norm_lets_the_pictures_brightness_through(norm):
    # With no hole and zero biases (their initial value), every layer up to the first
    # normalisation is positively homogeneous (convolutions, ReLU): doubling the picture
    # doubles those maps. Instance normalisation divides that factor out of every map of
    # every picture, so the output does not change; BatchNorm at inference normalises with
    # fixed running statistics and keeps it. (Kernels x10 make the maps' variance large
    # beside the normalisations' epsilon.)
    keras.utils.set_random_seed(0)
    generator = model_lib.build_generator(num_blocks=1, channels=8, norm=norm)
    for variable in generator.trainable_variables:
        if "kernel" in variable.path:
            variable.assign(variable * 10)
    picture = np.random.default_rng(0).uniform(0.1, 0.5, (1, 32, 32, 3)).astype(np.float32)
    no_hole = np.zeros((1, 32, 32, 1), np.float32)
    once, twice = (generator(np.concatenate([scale * picture, no_hole], -1), training=False)
                   .numpy() for scale in (1, 2))
    kinds = {type(layer) for layer in generator.layers}
    if norm == "instance":
        assert np.abs(once - twice).max() < 1e-3
        assert model_utils.InstanceNormalization in kinds
    else:
        assert np.abs(once - twice).max() > 0.1
        assert model_utils.InstanceNormalization not in kinds
        # Every instance norm of the authors' generator became a BatchNorm, with its weights.
        instance = model_lib.build_generator(num_blocks=1, channels=8)
        count = sum(isinstance(l, model_utils.InstanceNormalization) for l in instance.layers)
        assert sum(isinstance(l, keras.layers.BatchNormalization)
                   for l in generator.layers) == count


def test_an_unknown_generator_norm_is_refused():
    with pytest.raises(errors.UserError, match="--generator_norm must be one of"):
        train_lib.Config(vgg_weights=None, generator_norm="layer")


def test_generator_and_discriminator_shapes():
    generator = model_lib.build_generator(num_blocks=1, channels=8)
    assert generator(tf.zeros([2, 48, 40, 4])).shape == (2, 48, 40, 3)
    discriminator = model_lib.build_discriminator(image_size=256, local_size=128, channels=4)
    logit, *features = discriminator([tf.zeros([2, 256, 256, 3]), tf.zeros([2, 128, 128, 3])])
    assert logit.shape == (2, 1)
    assert [f.shape[1:] for f in features] == [(64, 64, 4), (32, 32, 8), (16, 16, 16),
                                                (8, 8, 32), (4, 4, 32)]


@pytest.mark.parametrize("position", ["random", "center"])
def test_box_holes_shrink_inside_their_box(position):
    config = small_config(box_position=position)
    batch = first_batch(config, batch_size=4)
    for mask, (top, left) in zip(batch["mask"].numpy(), batch["corner"].numpy()):
        rows, cols = np.nonzero(mask[..., 0])
        assert top <= rows.min() and rows.max() < top + 32
        assert left <= cols.min() and cols.max() < left + 32
        for extent in (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1):
            assert 32 - 2 * 4 <= extent <= 32
        if position == "center":
            assert (top, left) == (16, 16)


def test_irregular_masks_come_from_the_folder_with_a_random_box(tmp_path):
    for i in range(3):
        mask = np.zeros((100, 100), np.uint8)
        mask[10 + 20 * i:40 + 20 * i, 30:60] = 255
        Image.fromarray(mask).save(tmp_path / f"{i}.png")
    config = small_config(mask_type="irregular", mask_dir=str(tmp_path))
    batch = first_batch(config, batch_size=4)
    coverage = batch["mask"].numpy().mean(axis=(1, 2, 3))
    assert np.all((coverage > 0.05) & (coverage < 0.15))  # 30x30 of 100x100 = 9%
    corners = batch["corner"].numpy()
    assert np.all((corners >= 0) & (corners <= 32))
    with pytest.raises(ValueError, match="--mask_dir"):
        small_config(mask_type="irregular")
    augmented = first_batch(small_config(mask_type="irregular", mask_dir=str(tmp_path),
                                         mask_augment=True), batch_size=4)["mask"].numpy()
    assert augmented.shape == batch["mask"].shape
    assert set(np.unique(augmented)) <= {0.0, 1.0} and not np.array_equal(augmented, batch["mask"])
    with pytest.raises(ValueError, match="--mask_augment .* --mask_type=irregular"):
        small_config(mask_augment=True)


def test_generator_loss_is_the_official_weighted_sum_on_the_composite():
    keras.utils.set_random_seed(0)
    config = small_config()
    task = train_lib.build_task(config)
    task.build_optimizers()
    batch = first_batch(config, batch_size=2)
    image, mask = batch["image"].numpy(), batch["mask"].numpy()
    # Instance norm makes the generator's output independent of the batch.
    output = task.generator(np.concatenate([image * (1 - mask), mask], -1), training=True).numpy()
    expected_pixel = np.mean(np.abs(mask * (output - image)))
    terms = {k: float(v) for k, v in task.train_step(batch, 0).items()}
    assert terms["pixel"] == pytest.approx(expected_pixel, rel=1e-4)
    assert terms["g_loss"] == pytest.approx(
        terms["pixel"] + 25 * (terms["self_guided"] + terms["feature_matching"])
        + terms["align"] + 0.003 * terms["gan"] + 5 * terms["discriminator_fm"], rel=1e-5)
    assert all(np.isfinite(v) for v in terms.values())


def test_learning_rate_halves_at_the_decay_step():
    optimizer = train_lib.build_task(small_config(lr_decay_step=10)).g_optimizer

    def rate_at(step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    assert [rate_at(s) for s in (0, 9, 10, 50)] == pytest.approx([2e-4, 2e-4, 1e-4, 1e-4])


@pytest.mark.parametrize("generator_norm", ["instance", "batch"])
def test_both_networks_train_every_step(generator_norm):
    keras.utils.set_random_seed(1)
    config = small_config(generator_norm=generator_norm)
    task = train_lib.build_task(config)
    task.build_optimizers()
    before = {name: [v.numpy().copy() for v in model.trainable_variables]
              for name, model in (("g", task.generator), ("d", task.discriminator))}
    vgg_before = [w.numpy().copy() for w in task.feature_extractor.vgg_model.weights]
    running = [v.numpy().copy() for v in task.generator.non_trainable_variables]
    task.train_step(first_batch(config, 2), 0)
    # The ablation's BatchNorm learns its running statistics (instance norm has none).
    assert bool(running) == (generator_norm == "batch")
    assert all(not np.array_equal(a, b.numpy())
               for a, b in zip(running, task.generator.non_trainable_variables))
    for name, model in (("g", task.generator), ("d", task.discriminator)):
        assert any(not np.array_equal(a, b.numpy())
                   for a, b in zip(before[name], model.trainable_variables)), name
    # The VGG19 is frozen and stays out of the checkpoint.
    for a, b in zip(vgg_before, task.feature_extractor.vgg_model.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert set(task.checkpoint_items()) == {"generator", "discriminator", "g_optimizer",
                                            "d_optimizer"}


def test_cli_dry_run_and_smoke_run(tmp_path):
    # The default --vgg_weights=imagenet: counting never downloads (none can be had here).
    result = run_cli(f"--flagfile={CONFIGS}/paper.cfg", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "generator_params": 9_037_443, "discriminator_params": 36_673_025}
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-3")
    # The smoke config's random VGG19 is said loudly; without --eval_data, no empty eval/ run.
    assert "*** random VGG19 weights (--vgg_weights=none)" in result.stderr
    assert not (tmp_path / "eval").exists() and (tmp_path / "train").is_dir()
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3]
    assert {"pixel", "self_guided", "feature_matching", "align", "gan", "discriminator_fm",
            "g_loss", "d_loss"} <= set(records[0])
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}/x",
                     "--mask_type=irregular", f"--mask_dir={tmp_path}/none")
    assert result.returncode == 1 and f"{tmp_path}/none" in result.stderr


@pytest.mark.parametrize("mask_type", ["strokes", "matched_strokes"])
def test_stroke_masks_with_a_random_local_box(mask_type):
    from reproductions.dmfn import train_lib

    config = helpers.smoke_config("dmfn", mask_type=mask_type)
    make = train_lib.example_fn(config, 0, 2)
    image = tf.zeros([config.image_size, config.image_size, 3])
    corners, areas = set(), []
    for i in range(6):
        example = make(image, tf.constant([i, 3]), 0)
        assert example["mask"].shape == (config.image_size, config.image_size, 1)
        np.testing.assert_array_equal(example["mask"], masks.strokes_by_area_mask(
            tf.random.experimental.stateless_fold_in(tf.constant([i, 3]), 0), config.image_size,
            depth_matched=mask_type == "matched_strokes"))
        areas.append(float(tf.reduce_mean(example["mask"])))
        top, left = (int(v) for v in example["corner"])
        assert 0 <= top <= config.image_size - config.local_size
        assert 0 <= left <= config.image_size - config.local_size
        corners.add((top, left))
    assert len(corners) > 1 and 0 < min(areas) and max(areas) <= 0.62
