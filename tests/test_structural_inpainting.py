"""Structural Inpainting: networks, the feature loss, stages, ablations and runs."""

import dataclasses
import json
import os

import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import experiment
from common import vgg
from reproductions.structural_inpainting import losses
from reproductions.structural_inpainting import train_lib
from reproductions.structural_inpainting.paper import PAPER

CONFIGS = helpers.configs_dir("structural_inpainting")
def tiny_config(**kwargs):
    """The smoke config (configs/smoke.cfg), with `kwargs` changed."""
    return helpers.smoke_config("structural_inpainting", **kwargs)


def run_cli(*args, **kwargs):
    return helpers.run_cli("structural_inpainting", *args, **kwargs)


run_config = helpers.run_config


def first_batch(config, batch_size=2):
    return helpers.first_batch(train_lib, config, batch_size)


def test_parameter_counts_match_the_spec_sheet():
    task = train_lib.build_task(train_lib.Config(vgg_weights=None))
    assert train_lib.parameter_counts(task) == {"generator_params": 38_348_691,
                                                "discriminator_params": 694_241}


def test_context_encoder_networks_are_an_option():
    task = train_lib.build_task(train_lib.Config(architecture="context_encoder", bottleneck=4000,
                                                 vgg_weights=None))
    assert train_lib.parameter_counts(task) == {"generator_params": 71_124_544,
                                                "discriminator_params": 2_765_568}
    losses_ = task.train_step(first_batch(tiny_config(architecture="context_encoder")), 0)
    assert np.isfinite(float(losses_["structural"]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generator_output_is_a_non_negative_64x64_patch(seed):
    """The port's last conv keeps tf.contrib's default ReLU: no output is ever negative,
    whatever the input and weights (random ones here, where 5-64 % of the last conv's
    pre-activations are negative)."""
    keras.utils.set_random_seed(seed)
    task = train_lib.build_task(tiny_config())
    inputs = tf.random.uniform([2, 128, 128, 3], -3.0, 3.0, seed=seed)
    output = task.generator(inputs, training=False)
    assert output.shape == (2, 64, 64, 3)
    assert float(tf.reduce_min(output)) >= 0.0
    assert float(tf.reduce_max(output)) > 0.0
    assert float(tf.reduce_mean(tf.cast(output == 0.0, tf.float32))) > 0.02  # it does clip
    assert task.discriminator(output).shape == (2, 1)


def test_generator_output_activation_of_older_runs_is_linear():
    """--output_activation=linear rebuilds a run trained before the ReLU output: the same
    weights then give the same pre-activations, negative ones included."""
    keras.utils.set_random_seed(4)
    relu_task = train_lib.build_task(tiny_config())
    linear_task = train_lib.build_task(tiny_config(output_activation="linear"))
    linear_task.generator.set_weights(relu_task.generator.get_weights())
    inputs = tf.random.uniform([2, 128, 128, 3], seed=4)
    linear = linear_task.generator(inputs).numpy()
    assert linear.min() < 0
    np.testing.assert_allclose(relu_task.generator(inputs).numpy(), np.maximum(linear, 0),
                               atol=1e-6)


def _flat_features(discriminator, patch):
    """The discriminator's input to its logit layer."""
    head = keras.Model(discriminator.input, discriminator.get_layer("flatten").output)
    return head(patch).numpy()


@pytest.mark.parametrize("logit_relu", [False, True])
def test_discriminator_logit_by_hand_in_both_forms(logit_relu):
    """The logit is flatten @ W + b: as it is by default, ReLU'd with --d_logit_relu
    (the port's form), where a negative logit is 0 and passes no gradient."""
    keras.utils.set_random_seed(5)
    task = train_lib.build_task(tiny_config(d_logit_relu=logit_relu))
    discriminator = task.discriminator
    dense = discriminator.get_layer("logit")
    patch = tf.random.uniform([4, 64, 64, 3], seed=5)
    flat = _flat_features(discriminator, patch)
    kernel = np.linspace(-1.0, 1.0, flat.shape[1], dtype=np.float32)[:, None]
    # A bias that makes two of the four logits negative and two positive.
    pre = flat @ kernel
    bias = -float(np.median(pre))
    dense.set_weights([kernel, np.array([bias], np.float32)])
    by_hand = pre[:, 0] + bias
    assert (by_hand < 0).sum() == 2
    expected = np.maximum(by_hand, 0) if logit_relu else by_hand
    with tf.GradientTape() as tape:
        logits = discriminator(patch)
        total = tf.reduce_sum(logits)
    np.testing.assert_allclose(logits.numpy()[:, 0], expected, rtol=1e-4, atol=1e-4)
    kernel_grad = tape.gradient(total, dense.kernel).numpy()[:, 0]
    # d(sum of logits)/dW sums the flat features of the images whose logit passes.
    passing = (by_hand > 0) if logit_relu else np.ones(4, bool)
    np.testing.assert_allclose(kernel_grad, flat[passing].sum(axis=0), rtol=1e-4, atol=1e-4)


def test_optimizers_use_tf1_adam_epsilon_and_step_as_by_hand():
    """Adam's epsilon is TF1's 1e-8, as the port's AdamOptimizer; one step by hand:
    var -= lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps), m = (1 - b1) g,
    v = (1 - b2) g^2. A gradient of 1e-6 makes the epsilon matter: Keras' default 1e-7
    would give a step 3.2 times smaller."""
    task = train_lib.build_task(tiny_config())
    for optimizer in (task.g_optimizer, task.g_joint_optimizer, task.d_optimizer):
        assert optimizer.epsilon == 1e-8
    lr, beta1, beta2, gradient = 2e-4, 0.5, 0.999, 1e-6
    optimizer = train_lib._adam(lr, beta1)
    variable = tf.Variable([1.0, -2.0])
    optimizer.apply([tf.constant([gradient, -gradient])], [variable])
    m, v = (1 - beta1) * gradient, (1 - beta2) * gradient ** 2
    step = lr * np.sqrt(1 - beta2) / (1 - beta1) * m / (np.sqrt(v) + 1e-8)
    assert step == pytest.approx(lr * 0.7597, rel=1e-3)  # 3.16e-8 / (3.16e-8 + 1e-8)
    np.testing.assert_allclose(variable.numpy(), [1.0 - step, -2.0 + step], rtol=0, atol=1e-7)


def hand_feature_loss(extractor, prediction01, target01, weights):
    """Independent computation with keras.applications' own VGG16 and preprocessing."""
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    model.set_weights(_matching_weights(model, extractor))
    names = {"conv1_1": "block1_conv1", "conv2_1": "block2_conv1", "conv3_1": "block3_conv1"}
    taps = keras.Model(model.input, [model.get_layer(names[n]).output for n in weights])
    prep = keras.applications.vgg16.preprocess_input
    pred = taps(prep(prediction01 * 255.0))
    target = taps(prep(target01 * 255.0))
    return sum(w * np.mean((p.numpy() / 255 - t.numpy() / 255) ** 2)
               for w, p, t in zip(weights.values(), pred, target))


def _matching_weights(model, extractor):
    """The extractor's (truncated) VGG weights by name; deeper layers keep their own."""
    by_name = {w.path: w.numpy() for w in extractor.vgg_model.weights}
    return [by_name.get(w.path, w.numpy()) for w in model.weights]


def test_feature_loss_is_zero_for_identical_images_and_matches_a_hand_computation():
    keras.utils.set_random_seed(0)
    extractor = vgg.FeatureExtractor("vgg16", ("conv1_1", "conv2_1", "conv3_1"), weights=None)
    weights = {"conv1_1": 1.0, "conv2_1": 0.5, "conv3_1": 2.0}
    rng = np.random.default_rng(0)
    target = tf.constant(rng.uniform(0, 1, (2, 16, 16, 3)), tf.float32)
    prediction = tf.constant(rng.uniform(0, 1, (2, 16, 16, 3)), tf.float32)
    assert float(losses.feature_reconstruction_loss(extractor, target, target, weights)) == 0.0
    loss = float(losses.feature_reconstruction_loss(extractor, prediction, target, weights))
    assert loss > 0
    assert loss == pytest.approx(hand_feature_loss(extractor, prediction, target, weights),
                                 rel=1e-4)


def test_feature_gradient_reaches_the_generator_but_not_vgg():
    keras.utils.set_random_seed(1)
    task = train_lib.build_task(tiny_config(lambda_adv=0.0))
    task.build_optimizers()
    batch = first_batch(tiny_config())
    image01 = (batch["image"] + 1) / 2
    vgg_weights = task.feature_extractor.vgg_model.weights
    vgg_before = [w.numpy().copy() for w in vgg_weights]
    with tf.GradientTape(persistent=True) as tape:
        prediction = task.prediction(task.network_input(batch["image"], batch["mask"]), True)
        loss = task.feature_loss(prediction, image01)
    generator_grads = tape.gradient(loss, task.generator.trainable_variables)
    assert all(g is not None for g in generator_grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in generator_grads) > 0
    assert all(g is None for g in tape.gradient(loss, vgg_weights))
    task.train_step(batch, 0)
    for before, after in zip(vgg_before, vgg_weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert "feature_extractor" not in task.checkpoint_items()


def test_feature_loss_sees_the_composite_or_the_patches():
    keras.utils.set_random_seed(2)
    batch = first_batch(tiny_config())
    image01 = (batch["image"] + 1) / 2
    patch = image01[:, 32:96, 32:96]
    for feature_on in ("composite", "patch"):
        task = train_lib.build_task(tiny_config(feature_on=feature_on))
        # A perfect prediction gives no feature loss either way...
        assert float(task.feature_loss(patch, image01)) == pytest.approx(0.0, abs=1e-9)
        # ...and a wrong one does.
        assert float(task.feature_loss(patch * 0.5, image01)) > 0


def test_stages_switch_optimizers_and_networks():
    keras.utils.set_random_seed(3)
    config = tiny_config(structural_steps=2)
    task = train_lib.build_task(config)
    task.build_optimizers()
    assert [task.phase_at(s) for s in range(4)] == [0, 0, 1, 1]
    batch = first_batch(config)
    d_before = [v.numpy().copy() for v in task.discriminator.trainable_variables]
    result = task.train_step(batch, 0)
    assert set(result) == {"reconstruction", "feature", "structural"}
    assert int(task.g_optimizer.iterations) == 1 and int(task.g_joint_optimizer.iterations) == 0
    assert all(np.array_equal(a, b.numpy())
               for a, b in zip(d_before, task.discriminator.trainable_variables))
    result = task.train_step(batch, 1)
    assert {"adversarial", "d_loss", "g_loss"} <= set(result)
    assert int(task.g_optimizer.iterations) == 1 and int(task.g_joint_optimizer.iterations) == 1
    assert not all(np.array_equal(a, b.numpy())
                   for a, b in zip(d_before, task.discriminator.trainable_variables))
    # Near the start both logits are close to 0: d_loss ~ 0.1 * (log 2 + log 2).
    assert float(result["d_loss"]) == pytest.approx(0.1 * 2 * np.log(2), rel=0.5)


@pytest.mark.parametrize("name, has_vgg, has_discriminator", [
    ("ablation_l2", False, False), ("ablation_l2_feat", True, False),
    ("ablation_l2_adv", False, True), ("ablation_l2_feat_adv", True, True), ("paper", True, True)])
def test_ablation_configs_build_the_right_losses(name, has_vgg, has_discriminator):
    values = helpers.paper_flags("structural_inpainting",
                                 f"--flagfile={os.path.join(CONFIGS, name + '.cfg')}")
    config = tiny_config(lambda_feat=values.lambda_feat, lambda_adv=values.lambda_adv)
    task = train_lib.build_task(config)
    assert (task.feature_extractor is not None) == has_vgg
    assert (task.discriminator is not None) == has_discriminator
    assert task.phase_at(10**6) == int(has_discriminator)
    assert values.num_steps == 152580 and values.batch_size == 64  # the paper's length


def test_real_vgg_features_grow_with_the_damage(shared_data):
    from PIL import Image

    weights_path = os.path.join(shared_data, "weights", "vgg16_imagenet_notop.weights.h5")
    extractor = vgg.FeatureExtractor("vgg16", ("conv1_1", "conv2_1", "conv3_1"),
                                     weights=weights_path)
    faces = sorted(os.listdir(os.path.join(shared_data, "faces")))[:2]
    images = np.stack([np.asarray(Image.open(os.path.join(shared_data, "faces", f)).resize(
        (64, 64)), np.float32) / 255 for f in faces])
    target = tf.constant(images)
    weights = {"conv1_1": 1.0, "conv2_1": 1.0, "conv3_1": 1.0}
    values = [float(losses.feature_reconstruction_loss(
        extractor, tf.image.resize(tf.image.resize(target, [64 // k, 64 // k]), [64, 64]),
        target, weights)) for k in (1, 2, 4, 8)]
    assert values[0] < 1e-6 and values[1] < values[2] < values[3]


def test_stage_survives_a_resume(tmp_path):
    config = tiny_config(structural_steps=2)
    experiment.run(PAPER, config, run_config(tmp_path, 1))
    result = experiment.run(PAPER, config, run_config(tmp_path, 4))
    assert result.step == 4
    assert [r["phase"] for r in helpers.train_records(tmp_path)] == ["structural", "structural",
                                                            "joint", "joint"]
    # Both networks and all three optimizers restore into fresh, differently
    # seeded tasks identically (variable names in the file depend on which
    # object reaches a variable first, so compare restored values instead).
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    restored = []
    for seed in (10, 11):
        keras.utils.set_random_seed(seed)
        task = train_lib.build_task(config)
        task.build_optimizers()
        tf.train.Checkpoint(**task.checkpoint_items()).restore(latest).assert_existing_objects_matched()
        restored.append(task)
    for model in ("generator", "discriminator"):
        for a, b in zip(getattr(restored[0], model).weights, getattr(restored[1], model).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(restored[0].g_joint_optimizer.iterations) == 2
    # The frozen VGG16 is not saved: no variable has the shape of its first kernel.
    assert not any(shape == [3, 3, 3, 64] for _, shape in tf.train.list_variables(latest))


def test_a_run_from_before_the_relu_output_loads_linear_and_resumes_only_so(tmp_path):
    """A config.json written before --output_activation existed is a linear-output run:
    inference rebuilds it linear, and resuming it with the new default is refused."""
    from reproductions import inpainters

    config = tiny_config(lambda_adv=0.0)
    experiment.run(PAPER, config, run_config(tmp_path, 1))
    path = tmp_path / "config.json"
    record = json.loads(path.read_text())
    assert record["config"]["output_activation"] == "relu"
    del record["config"]["output_activation"]
    path.write_text(json.dumps(record))
    _, task = inpainters.load_task(str(tmp_path))
    assert task.generator.get_layer("output").activation.__name__ == "linear"
    with pytest.raises(ValueError, match="--output_activation=linear"):
        experiment.run(PAPER, config, run_config(tmp_path, 2))
    result = experiment.run(PAPER, dataclasses.replace(config, output_activation="linear"),
                         run_config(tmp_path, 2))
    assert result.step == 2


def test_cli_dry_run_and_smoke_run(tmp_path):
    from conftest import SHARED_DATA

    # The default --vgg_weights=imagenet: counting never downloads (none can be had here).
    result = run_cli(f"--flagfile={CONFIGS}/paper.cfg", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "generator_params": 38_348_691, "discriminator_params": 694_241}
    weights_path = os.path.join(SHARED_DATA, "weights", "vgg16_imagenet_notop.weights.h5")
    vgg_flag = [f"--vgg_weights={weights_path}"] if os.path.exists(weights_path) else []
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}", *vgg_flag)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["phase"] for r in helpers.train_records(tmp_path)] == ["structural", "structural",
                                                            "joint", "joint"]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}/x",
                     "--vgg_weights=/no/such/vgg.weights.h5")
    assert result.returncode == 1 and "/no/such/vgg.weights.h5" in result.stderr


def test_offline_imagenet_weights_fail_in_one_line_naming_the_flag(tmp_path):
    """Offline (a proxy that refuses, an empty Keras cache), the ImageNet weights cannot
    be had: one line says which flag to give, and the run's files are not written."""
    offline = {"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
               "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9"}
    result = run_cli(f"--flagfile={CONFIGS}/smoke.cfg", f"--workdir={tmp_path}/y",
                     "--vgg_weights=imagenet", env=offline)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "--vgg_weights=PATH" in result.stderr and "--vgg_weights=none" in result.stderr
    assert not os.path.exists(f"{tmp_path}/y/config.json")
    assert not os.path.exists(f"{tmp_path}/y/flags.cfg")
