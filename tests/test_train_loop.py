"""The shared training loop, on a tiny synthetic task that trains in milliseconds."""

import json
import math
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import losses
from common import masks
from common import train_loop

SIZE = 16
BATCH = 4


class TinyTask(train_loop.Task):
    """A 3x3 conv that learns to fill a centre hole; two phases for the phase logic."""

    def __init__(self, learning_rate=0.05, phase_switch=None):
        self.model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(3, 3,
                                       padding="same")])
        self.optimizer = train_loop.make_optimizer(keras.optimizers.Adam(learning_rate))
        self.phase_switch = phase_switch

    def checkpoint_items(self):
        return {"model": self.model, "optimizer": self.optimizer}

    def build_optimizers(self):
        self.optimizer.build(self.model.trainable_variables)

    def phase_at(self, step):
        return int(self.phase_switch is not None and step >= self.phase_switch)

    def train_step(self, batch, phase):
        with tf.GradientTape() as tape:
            output = self.model(batch["image"] * (1 - batch["mask"]), training=True)
            loss = losses.masked_l2(output, batch["image"], batch["mask"])
            scaled = train_loop.scale_loss(self.optimizer, train_loop.replica_loss(loss))
        train_loop.apply_gradients(self.optimizer, tape, scaled, self.model)
        return {"loss": loss, "phase_seen": tf.constant(float(phase))}

    def predict(self, batch):
        image = tf.convert_to_tensor(batch["image"])
        mask = tf.convert_to_tensor(batch["mask"])
        output = self.model(image * (1 - mask), training=False)
        return {"input": image * (1 - mask), "output": output,
                "composite": mask * output + (1 - mask) * image, "target": image, "mask": mask}


def smooth_images(seed):
    """Smooth random images: a learnable fill (neighbours predict the hole)."""
    coarse = tf.random.stateless_uniform([BATCH, 4, 4, 3], seed, -1.0, 1.0)
    return tf.image.resize(coarse, [SIZE, SIZE], method="bilinear")


def make_dataset(start_index, poison_at=None):
    """Deterministic batches: batch k depends only on k, so a resume sees the same data."""
    mask = masks.center_mask(SIZE, 4, overlap=0)  # a 3x3 conv can reach every hole pixel

    def batch_at(k):
        image = smooth_images(tf.stack([tf.constant(7, tf.int64), k]))
        if poison_at is not None:
            image = tf.where(k == poison_at, image * np.nan, image)
        return {"image": image, "mask": tf.broadcast_to(mask, [BATCH, SIZE, SIZE, 1])}

    return tf.data.Dataset.range(start_index // BATCH, 10**6).map(batch_at)


def config(workdir, num_steps=6, **kwargs):
    settings = dict(workdir=str(workdir), num_steps=num_steps, batch_size=BATCH, log_every=1,
                    checkpoint_every=2, sample_every=3, eval_every=3, keep_checkpoints=2)
    settings.update(kwargs)
    return train_loop.LoopConfig(**settings)


def weights(task):
    return [w.numpy().copy() for w in task.model.weights]


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def sample_batch():
    return {k: v.numpy() for k, v in next(iter(make_dataset(0))).items()}


def test_training_writes_checkpoints_logs_samples_and_loss_falls(tmp_path):
    keras.utils.set_random_seed(0)
    task = TinyTask()
    eval_data = make_dataset(0).take(2)
    result = train_loop.train(task, make_dataset, config(tmp_path, num_steps=30),
                              sample_batch=sample_batch(), eval_dataset=eval_data)
    assert result.step == 30 and not result.interrupted
    manager_dir = tmp_path / "checkpoints"
    assert tf.train.latest_checkpoint(str(manager_dir)).endswith("ckpt-30")
    # keep_checkpoints=2: only the last two remain.
    assert sorted(p.name for p in manager_dir.glob("*.index")) == ["ckpt-28.index",
                                                                  "ckpt-30.index"]
    assert list((tmp_path / "train").glob("events.out.tfevents.*"))
    assert list((tmp_path / "eval").glob("events.out.tfevents.*"))
    assert (tmp_path / "samples" / "step_00000003.png").stat().st_size > 1000
    records = read_metrics(tmp_path)
    train_records = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train_records] == list(range(1, 31))
    assert all("loss" in r and r["images_per_second"] > 0 for r in train_records)
    eval_records = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in eval_records] == list(range(3, 31, 3))
    assert {"psnr", "ssim", "l1_hole", "l2_hole"} <= set(eval_records[0])
    first, last = train_records[0]["loss"], np.mean([r["loss"] for r in train_records[-5:]])
    assert last < 0.4 * first  # 0.11-0.17 over seeds 0-4
    assert eval_records[-1]["psnr_hole"] > eval_records[0]["psnr_hole"]


def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path):
    keras.utils.set_random_seed(1)
    straight = TinyTask()
    initial = weights(straight)
    train_loop.train(straight, make_dataset, config(tmp_path / "straight", num_steps=6))

    keras.utils.set_random_seed(1)
    first_half = TinyTask()
    assert all(np.array_equal(a, b) for a, b in zip(initial, weights(first_half)))
    train_loop.train(first_half, make_dataset, config(tmp_path / "resumed", num_steps=3))
    # A new process would build fresh (differently initialised) networks:
    keras.utils.set_random_seed(99)
    second_half = TinyTask()
    result = train_loop.train(second_half, make_dataset, config(tmp_path / "resumed", num_steps=6))
    assert result.step == 6
    for a, b in zip(weights(straight), weights(second_half)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed")]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicates, no gap


def test_resume_drops_log_lines_of_steps_that_are_recomputed(tmp_path):
    keras.utils.set_random_seed(2)
    train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=3, checkpoint_every=2))
    # Steps 1..3 are logged but only step 2 was checkpointed before the run ended
    # at 3 (the final step is saved too, so remove it to mimic a crash).
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(), str(tmp_path / "checkpoints"), 5)
    assert manager.latest_checkpoint.endswith("ckpt-3")
    for path in (tmp_path / "checkpoints").glob("ckpt-3.*"):
        path.unlink()
    with open(tmp_path / "checkpoints" / "checkpoint", "w") as f:
        f.write('model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n')
    train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=4))
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]


def test_phase_is_checkpointed_and_each_phase_is_traced(tmp_path):
    task = TinyTask(phase_switch=2)
    result = train_loop.train(task, make_dataset, config(tmp_path, num_steps=4))
    assert result.last_losses["phase_seen"] == 1.0
    records = read_metrics(tmp_path)
    assert [r["phase"] for r in records] == ["0", "0", "1", "1"]
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    assert reader.get_tensor("phase/.ATTRIBUTES/VARIABLE_VALUE") == 1
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 4


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    task = TinyTask()
    with pytest.raises(train_loop.NonFiniteLossError, match="step 5.*loss=nan"):
        train_loop.train(task, lambda start: make_dataset(start, poison_at=4),
                         config(tmp_path, num_steps=10))
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-4")
    reader = tf.train.load_checkpoint(latest)
    for name, _ in tf.train.list_variables(latest):
        if name.startswith("model/"):
            assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path):
    calls = {"n": 0}

    def signalling_dataset(start_index):
        def maybe_signal(batch):
            calls["n"] += 1
            if calls["n"] == 3:  # while the third batch is fetched
                os.kill(os.getpid(), signal.SIGTERM)
            return batch
        return tf.data.Dataset.from_generator(
            lambda: (maybe_signal(b) for b in make_dataset(start_index).as_numpy_iterator()),
            output_signature={"image": tf.TensorSpec([BATCH, SIZE, SIZE, 3]),
                              "mask": tf.TensorSpec([BATCH, SIZE, SIZE, 1])})

    task = TinyTask()
    result = train_loop.train(task, signalling_dataset,
                              config(tmp_path, num_steps=50, checkpoint_every=100))
    assert result.interrupted
    # Prefetching may have fetched a batch or two ahead; the step taken when the
    # flag was seen is saved, whatever it is.
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith(f"ckpt-{result.step}") and 1 <= result.step < 50
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    resumed = train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=50,
                                                               checkpoint_every=100))
    assert resumed.step == 50 and not resumed.interrupted


def test_finished_run_is_not_retrained(tmp_path):
    train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=2))
    result = train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=2))
    assert result.step == 2 and result.last_losses == {}


def test_xla_step_matches_the_plain_step(tmp_path):
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(3)
        task = TinyTask()
        train_loop.train(task, make_dataset, config(tmp_path / str(jit), num_steps=3,
                                                    jit_compile=jit))
        results.append(weights(task))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_float16_uses_a_loss_scale_optimizer_and_trains(tmp_path):
    train_loop.set_precision("float16")
    try:
        task = TinyTask()
        assert isinstance(task.optimizer, keras.optimizers.LossScaleOptimizer)
        result = train_loop.train(task, make_dataset, config(tmp_path, num_steps=4))
        assert math.isfinite(result.last_losses["loss"])
    finally:
        train_loop.set_precision("none")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_unwritable_workdir_fails_early(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="--workdir"):
        train_loop.train(TinyTask(), make_dataset, config(blocker / "run"))


@pytest.mark.parametrize("field", ["num_steps", "log_every", "checkpoint_every",
                                   "keep_checkpoints"])
def test_loop_config_rejects_non_positive_values(tmp_path, field):
    with pytest.raises(ValueError, match=f"--{field}"):
        config(tmp_path, **{field: 0})


def test_bad_precision_and_strategy_names():
    with pytest.raises(ValueError, match="--mixed_precision"):
        train_loop.set_precision("float8")
    with pytest.raises(ValueError, match="--strategy"):
        train_loop.make_strategy("tpu")


def test_progress_duration_format():
    assert train_loop.format_duration(3725) == "1:02:05"
    assert train_loop.format_duration(float("inf")) == "?"
