"""Context Encoders: networks against the spec sheet, the loss, the data, and real runs."""

import json
import os
import subprocess
import sys

import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import devices
from common import experiment
from common import masks
from common import train_loop
from reproductions.context_encoder import model as model_lib
from reproductions.context_encoder import train_lib
from reproductions.context_encoder.masks import random_region_mask
from reproductions.context_encoder.paper import PAPER

REPO = helpers.REPO
CONFIGS = helpers.configs_dir("context_encoder")
def tiny_config(**kwargs):
    """The smoke config (configs/smoke.cfg), with `kwargs` changed."""
    return helpers.smoke_config("context_encoder", **kwargs)


def sample_dataset(config, data, batch_size=4):
    return experiment.make_dataset(train_lib.paper_input(config), data, spec="sample",
                                   training=True, batch_size=batch_size)


def run_cli(*args):
    return helpers.run_cli("context_encoder", *args)


def run_config(workdir, num_steps, **kwargs):
    return helpers.run_config(workdir, num_steps, **{"batch_size": 4, **kwargs})


# Spec sheet 1.2 / 1.3 (COMPUTED). The official code zeroes every conv bias
# before each update, so the effective counts leave the biases out: the spec's
# D counts include them (center: 961 biases, random region: 1,025).
@pytest.mark.parametrize("variant, generator, discriminator", [
    ("center", 71_124_544, 2_766_529 - 961),
    ("random_region", 71_196_259 - 6_051, 2_832_257 - 1_025),
])
def test_parameter_counts_match_the_spec_sheet(variant, generator, discriminator):
    task = train_lib.build_task(train_lib.Config(variant=variant))
    assert train_lib.parameter_counts(task) == {"generator_params": generator,
                                                "discriminator_params": discriminator}


def test_l2_only_model_has_no_discriminator():
    task = train_lib.build_task(tiny_config(adversarial=False))
    assert task.discriminator is None
    assert set(task.checkpoint_items()) == {"generator", "g_optimizer"}
    assert train_lib.parameter_counts(task)["discriminator_params"] == 0


@pytest.mark.parametrize("variant, out_size, d_size", [("center", 64, 64),
                                                       ("random_region", 128, 128)])
def test_network_shapes(variant, out_size, d_size):
    generator = model_lib.build_generator(variant, ngf=8, nef=8, bottleneck=16)
    discriminator = model_lib.build_discriminator(variant, ndf=8)
    assert generator.output_shape == (None, out_size, out_size, 3)
    assert discriminator.input_shape == (None, d_size, d_size, 3)
    assert discriminator.output_shape == (None, 1)
    output = generator(tf.zeros([2, 128, 128, 3]), training=False).numpy()
    assert output.min() >= -1.0 and output.max() <= 1.0  # tanh


def test_layers_follow_the_official_code():
    generator = model_lib.build_generator("center", ngf=8, nef=8, bottleneck=16)
    discriminator = model_lib.build_discriminator("center", ndf=8)
    for model in (generator, discriminator):
        for layer in model.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                assert not layer.use_bias, layer.name
                assert layer.kernel_size == (4, 4)
            if isinstance(layer, keras.layers.BatchNormalization):
                assert layer.momentum == 0.9 and layer.epsilon == 1e-5
            if isinstance(layer, keras.layers.LeakyReLU):
                assert layer.negative_slope == pytest.approx(0.2)
    # The first encoder layer has no BatchNorm; the bottleneck is 1x1.
    layers = generator.layers
    after_enc1 = layers[[layer.name for layer in layers].index("enc1") + 1]
    assert isinstance(after_enc1, keras.layers.LeakyReLU)
    assert isinstance(layers[[layer.name for layer in layers].index("enc2") + 1],
                      keras.layers.BatchNormalization)
    assert generator.get_layer("bottleneck").output.shape[1:3] == (1, 1)


def batch_of(images, config):
    mask = masks.center_mask(config.image_size, config.hole_size, config.overlap)
    return {"image": tf.constant(images, tf.float32),
            "mask": tf.broadcast_to(mask, [len(images), 128, 128, 1])}


def test_train_step_losses_match_a_hand_computation():
    keras.utils.set_random_seed(0)
    config = tiny_config()
    task = train_lib.build_task(config)
    task.build_optimizers()
    images = np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
    batch = batch_of(images, config)
    # The step sees the weights from before its update; BatchNorm in training
    # mode is a pure function of the weights and the batch.
    inputs = task.network_input(batch["image"], batch["mask"])
    fake = task.generator(inputs, training=True).numpy()
    real = images[:, 32:96, 32:96]
    ring = np.full((64, 64), 10.0)
    ring[4:60, 4:60] = 1.0
    expected_l2 = np.mean(ring[None, :, :, None] * (fake - real) ** 2)
    real_logits = task.discriminator(real, training=True).numpy()
    fake_logits = task.discriminator(fake, training=True).numpy()
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731  BCE(x, 1) = softplus(-x)
    expected_d = np.mean(softplus(-real_logits)) + np.mean(softplus(fake_logits))
    expected_adv = np.mean(softplus(-fake_logits))

    losses = {k: float(v) for k, v in task.train_step(batch, phase=0).items()}
    assert losses["l2"] == pytest.approx(expected_l2, rel=1e-5)
    assert losses["d_loss"] == pytest.approx(expected_d, rel=1e-5)
    assert losses["adversarial"] == pytest.approx(expected_adv, rel=1e-5)
    assert losses["g_loss"] == pytest.approx(0.999 * expected_l2 + 0.001 * expected_adv, rel=1e-5)


def test_hole_is_filled_with_the_mean_pixel_and_the_ring_stays_visible():
    config = tiny_config()
    task = train_lib.build_task(config)
    images = np.full((1, 128, 128, 3), 0.5, np.float32)
    batch = batch_of(images, config)
    inputs = task.network_input(batch["image"], batch["mask"]).numpy()[0]
    np.testing.assert_allclose(inputs[64, 64], masks.IMAGENET_MEAN_FILL, atol=1e-6)
    np.testing.assert_allclose(inputs[36:92, 36:92], np.broadcast_to(
        masks.IMAGENET_MEAN_FILL, (56, 56, 3)), atol=1e-6)
    assert np.all(inputs[32:36, 32:96] == 0.5)  # the 4-px ring is context
    assert np.all(inputs[:32] == 0.5)


@pytest.mark.parametrize("variant", ["center", "random_region"])
def test_composite_keeps_every_known_pixel(variant):
    config = tiny_config(variant=variant)
    task = train_lib.build_task(config)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
    if variant == "center":
        batch = batch_of(images, config)
    else:
        mask = tf.stack([random_region_mask(tf.constant([s, 0]), 128) for s in (1, 2)])
        batch = {"image": tf.constant(images), "mask": mask}
    outputs = {k: v.numpy() for k, v in task.predict(batch).items()}
    known = np.broadcast_to(outputs["mask"] == 0, images.shape)
    np.testing.assert_array_equal(outputs["composite"][known], images[known])
    assert not np.allclose(outputs["composite"][~known], images[~known])
    if variant == "center":
        # The raw output covers the whole 64x64 centre, the composite only its inner 56x56.
        assert not np.allclose(outputs["output"][:, 32:36, 32:96], images[:, 32:36, 32:96])


def test_random_region_masks_per_image_or_per_batch():
    data = run_config("unused", 1).data
    for per_batch in (False, True):
        config = tiny_config(variant="random_region", mask_per_batch=per_batch)
        dataset = sample_dataset(config, data)
        batch_masks = next(iter(dataset))["mask"].numpy()
        coverage = batch_masks.mean(axis=(1, 2, 3))
        assert np.all((coverage > 0.2) & (coverage < 0.3))
        same = all(np.array_equal(batch_masks[0], m) for m in batch_masks[1:])
        assert same == per_batch


def test_center_pipeline_crops_flips_and_masks():
    data = run_config("unused", 1).data
    config = tiny_config()
    batch = next(iter(sample_dataset(config, data)))
    assert batch["image"].shape == (4, 128, 128, 3)
    assert batch["mask"].shape == (4, 128, 128, 1)
    assert float(tf.reduce_sum(batch["mask"][0])) == 56 * 56


def test_l2_only_training_fits_a_fixed_batch(tmp_path):
    # The classic sanity check: the loss on one repeated batch must fall fast.
    keras.utils.set_random_seed(0)
    config = tiny_config(adversarial=False)
    data = run_config(tmp_path, 1).data
    batch = next(iter(sample_dataset(config, data)))
    task = train_lib.build_task(config)
    result = train_loop.train(task, lambda start: tf.data.Dataset.from_tensors(batch).repeat(),
                              run_config(tmp_path, num_steps=40, checkpoint_every=40).loop)
    assert result.step == 40
    losses = [r["l2"] for r in helpers.train_records(tmp_path)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])  # 0.11-0.29 over seeds 0-3


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path):
    config = tiny_config()
    experiment.run(PAPER, config, run_config(tmp_path / "straight", num_steps=4))
    experiment.run(PAPER, config, run_config(tmp_path / "resumed", num_steps=2))
    result = experiment.run(PAPER, config, run_config(tmp_path / "resumed", num_steps=4))
    assert result.step == 4
    straight = tf.train.load_checkpoint(str(tmp_path / "straight" / "checkpoints"))
    resumed = tf.train.load_checkpoint(str(tmp_path / "resumed" / "checkpoints"))
    names = [n for n, _ in tf.train.list_variables(str(tmp_path / "straight" / "checkpoints"))
             if n.startswith(("generator/", "discriminator/", "g_optimizer/", "d_optimizer/"))]
    assert len(names) > 20
    for name in names:
        np.testing.assert_allclose(straight.get_tensor(name), resumed.get_tensor(name),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    assert [r["step"] for r in helpers.train_records(tmp_path / "resumed")] == [1, 2, 3, 4]


def test_checkpoint_holds_both_networks_and_optimizers(tmp_path):
    config = tiny_config()
    experiment.run(PAPER, config, run_config(tmp_path, num_steps=2))
    # The paper and its settings are recorded, to load the model without flags.
    paper, fields = experiment.read_paper_config(str(tmp_path))
    assert paper == "context_encoder" and train_lib.Config(**fields) == config
    names = {n.split("/")[0] for n, _ in tf.train.list_variables(str(tmp_path / "checkpoints"))}
    assert {"generator", "discriminator", "g_optimizer", "d_optimizer", "step",
            "phase"} <= names


@pytest.mark.parametrize("kwargs, flag", [
    (dict(variant="anywhere"), "--variant"), (dict(wtl2=0.0), "--wtl2"),
    (dict(fill="blue"), "--fill"), (dict(overlap=40), "--overlap"),
    (dict(load_size=100), "--load_size"), (dict(lr_g=-1.0), "--lr_g"),
])
def test_bad_settings_name_their_flag(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        train_lib.Config(**kwargs)


def test_cli_dry_run_prints_parameter_counts():
    result = run_cli(f"--flagfile={CONFIGS}/paper_center.cfg", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "generator_params": 71_124_544, "discriminator_params": 2_765_568}


def test_cli_smoke_run_then_relaunch_from_flags_cfg(tmp_path):
    workdir = tmp_path / "run"
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "img/s" in result.stderr and "ETA" in result.stderr
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
    assert sorted(os.listdir(workdir / "samples")) == ["step_00000002.png", "step_00000004.png"]
    flagfile = (workdir / "flags.cfg").read_text()
    assert "--bottleneck=32" in flagfile and f"--workdir={workdir}" in flagfile
    # Relaunch exactly, for longer: it resumes at step 4.
    result = run_cli(f"--flagfile={workdir}/flags.cfg", "--max_steps=6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resumed from" in result.stderr
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-6")


def test_cli_rejects_bad_flags(tmp_path):
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}",
                     "--batch_size=-2")
    assert result.returncode == 1 and "--batch_size must be a positive integer" in result.stderr
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", "--workdir=")
    assert result.returncode == 1 and "--workdir is required" in result.stderr
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}",
                     "--train_data=/no/such/folder")
    assert result.returncode == 1 and "/no/such/folder" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}", "--wtl2=2")
    assert result.returncode == 1 and "--wtl2 must be in (0, 1]" in result.stderr


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_step_is_finite(precision):
    devices.set_precision(precision)
    try:
        task = train_lib.build_task(tiny_config())
        task.build_optimizers()
        expect_scaling = precision == "float16"
        assert isinstance(task.g_optimizer, keras.optimizers.LossScaleOptimizer) == expect_scaling
        assert isinstance(task.d_optimizer, keras.optimizers.LossScaleOptimizer) == expect_scaling
        images = np.random.default_rng(2).uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
        step = tf.function(lambda b: task.train_step(b, 0))
        losses = step(batch_of(images, tiny_config()))
        assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in losses.values())
    finally:
        devices.set_precision("none")


def test_xla_run(tmp_path):
    result = experiment.run(PAPER, tiny_config(), run_config(tmp_path, num_steps=2, jit_compile=True))
    assert result.step == 2 and all(np.isfinite(v) for v in result.last_losses.values())


MIRRORED_SCRIPT = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {tests!r})
import test_context_encoder as t
from common import experiment
from reproductions.context_encoder.paper import PAPER
rc = t.run_config({workdir!r}, num_steps=2, strategy="mirrored")
result = experiment.run(PAPER, t.tiny_config(), rc)
print("replicas", tf.distribute.MirroredStrategy().num_replicas_in_sync, "step", result.step)
"""


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    script = MIRRORED_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                    workdir=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2 step 2" in result.stdout
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")


def test_cli_refuses_a_checkpoint_of_other_networks(tmp_path):
    assert run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}",
                   "--max_steps=2").returncode == 0
    # Without the run's records the flags cannot be compared (test_run_dir covers that);
    # the checkpoint itself then refuses networks of another shape.
    os.remove(tmp_path / "config.json")
    os.remove(tmp_path / "flags.cfg")
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}",
                     "--max_steps=4", "--bottleneck=48")
    assert result.returncode == 1
    assert "does not match the networks built from the current flags" in result.stderr
    assert "Traceback" not in result.stderr


def test_initialisation_follows_the_seed_and_differs_between_layers():
    def build(seed):
        keras.utils.set_random_seed(seed)
        return train_lib.build_task(tiny_config())

    first, again, other = build(0), build(0), build(1)
    for a, b in zip(first.generator.weights, again.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    kernel = first.generator.get_layer("enc2").kernel.numpy()
    assert not np.array_equal(kernel, other.generator.get_layer("enc2").kernel.numpy())
    assert abs(kernel.std() - 0.02) < 0.004 and abs(kernel.mean()) < 0.004  # N(0, 0.02)
    # Two layers of the same shape must not start from the same values.
    gammas = [first.generator.get_layer(n).gamma.numpy() for n in ("enc2_bn", "dec4_bn")]
    assert gammas[0].shape == gammas[1].shape and not np.array_equal(*gammas)
