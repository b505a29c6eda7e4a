"""The shared training loop, on a tiny synthetic task that trains in milliseconds."""

import json
import math
import os
import signal
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common import devices
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
        train_loop.update(self.optimizer, tape, loss, self.model)
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


def _one_update(optimizer, weights, inputs):
    """The weights of a linear model after one `train_loop.update` on a squared loss."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.set_weights([weights])
    optimizer.build(model.trainable_variables)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(inputs) - 1.0))
    train_loop.update(optimizer, tape, loss, model)
    return model.get_weights()[0]


def test_update_is_plain_gradient_descent_and_loss_scaling_leaves_it_unchanged():
    weights = np.array([[0.5], [-1.0]], np.float32)
    inputs = tf.constant([[1.0, 2.0], [3.0, -1.0]])
    # loss = mean((x w - 1)^2): outputs -1.5 and 2.5, gradient = mean(2 (x w - 1) x)
    gradient = np.mean([2 * -2.5 * np.array([1.0, 2.0]), 2 * 1.5 * np.array([3.0, -1.0])],
                       axis=0)[:, None]
    plain = _one_update(keras.optimizers.SGD(0.1), weights, inputs)
    np.testing.assert_allclose(plain, weights - 0.1 * gradient, rtol=1e-6)
    scaled = _one_update(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1),
                                                             initial_scale=1024.0),
                         weights, inputs)
    np.testing.assert_array_equal(scaled, plain)  # a power-of-two scale cancels exactly


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


def test_non_finite_loss_before_any_checkpoint_says_there_is_none(tmp_path):
    with pytest.raises(train_loop.NonFiniteLossError, match="no checkpoint had been saved yet"):
        train_loop.train(TinyTask(), lambda start: make_dataset(start, poison_at=0),
                         config(tmp_path, num_steps=10))


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
    devices.set_precision("float16")
    try:
        task = TinyTask()
        assert isinstance(task.optimizer, keras.optimizers.LossScaleOptimizer)
        result = train_loop.train(task, make_dataset, config(tmp_path, num_steps=4))
        assert math.isfinite(result.last_losses["loss"])
    finally:
        devices.set_precision("none")
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
        devices.set_precision("float8")
    with pytest.raises(ValueError, match="--strategy"):
        devices.make_strategy("tpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\n"
                   "flags\t\t: other\n")
    assert devices.cpu_flags(str(x86)) == {"fpu", "sse2", "avx2", "fma"}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert devices.cpu_flags(str(arm)) & devices.BF16_CPU_FLAGS == {"bf16"}
    assert devices.cpu_flags(str(tmp_path / "absent")) is None
    (tmp_path / "empty").write_text("")
    assert devices.cpu_flags(str(tmp_path / "empty")) is None


@pytest.mark.parametrize("flags, warned", [({"avx2"}, True), ({"avx2", "avx512_bf16"}, False)])
def test_bfloat16_without_cpu_support_warns(monkeypatch, caplog, flags, warned):
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset(flags))
    try:
        with caplog.at_level("WARNING"):
            devices.set_precision("bfloat16")
    finally:
        devices.set_precision("none")
    assert ("without bfloat16 instructions" in caplog.text) == warned


def test_progress_duration_format():
    assert train_loop.format_duration(3725) == "1:02:05"
    assert train_loop.format_duration(float("inf")) == "?"


def test_steps_until_event_stops_at_every_host_event():
    cfg = config("unused", num_steps=100, log_every=10, checkpoint_every=25, sample_every=40,
                 eval_every=50, steps_per_loop=8)
    one_phase = lambda step: 0  # noqa: E731
    assert train_loop.steps_until_event(0, cfg, one_phase) == 8  # steps_per_loop
    assert train_loop.steps_until_event(8, cfg, one_phase) == 2  # log at 10
    assert train_loop.steps_until_event(20, cfg, one_phase) == 5  # checkpoint at 25
    assert train_loop.steps_until_event(37, cfg, one_phase) == 3  # log and sample at 40
    assert train_loop.steps_until_event(98, cfg, one_phase) == 2  # end at 100
    switch_at_33 = lambda step: int(step >= 33)  # noqa: E731
    assert train_loop.steps_until_event(30, cfg, switch_at_33) == 3  # phase change at 33
    assert train_loop.steps_until_event(33, cfg, switch_at_33) == 7


def _loss_events(event_dir):
    """(step, value) of the 'loss/loss' scalars written to TensorBoard."""
    from tensorboard.backend.event_processing import event_accumulator
    accumulator = event_accumulator.EventAccumulator(str(event_dir),
                                                     size_guidance={"tensors": 0})
    accumulator.Reload()
    return [(e.step, float(tf.make_ndarray(e.tensor_proto)))
            for e in accumulator.Tensors("loss/loss")]


def test_several_steps_per_call_train_exactly_like_one_step_per_call(tmp_path):
    runs = {}
    for steps_per_loop in (1, 5):
        keras.utils.set_random_seed(4)
        task = TinyTask(phase_switch=7)
        workdir = tmp_path / str(steps_per_loop)
        result = train_loop.train(task, make_dataset, config(
            workdir, num_steps=12, log_every=4, checkpoint_every=6, sample_every=100,
            eval_every=100, steps_per_loop=steps_per_loop))
        runs[steps_per_loop] = (weights(task), read_metrics(workdir), result,
                                _loss_events(workdir / "train"))
    (w1, m1, r1, e1), (w5, m5, r5, e5) = runs[1], runs[5]
    for a, b in zip(w1, w5):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [r["step"] for r in m5] == [4, 8, 12] == [r["step"] for r in m1]
    assert [r["phase"] for r in m5] == ["0", "1", "1"]
    assert r5.last_losses == pytest.approx(r1.last_losses)
    # The in-graph summaries: written at the logged steps only, equal to metrics.jsonl.
    assert [s for s, _ in e5] == [4, 8, 12]
    assert [v for _, v in e5] == pytest.approx([r["loss"] for r in m5])
    assert [v for _, v in e5] == pytest.approx([v for _, v in e1])


def test_non_finite_loss_inside_a_multi_step_call_names_its_step(tmp_path):
    with pytest.raises(train_loop.NonFiniteLossError, match="step 5 "):
        train_loop.train(TinyTask(), lambda start: make_dataset(start, poison_at=4),
                         config(tmp_path, num_steps=10, log_every=8, checkpoint_every=4,
                                steps_per_loop=8))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


def test_full_disk_is_refused_at_start_naming_the_workdir(tmp_path, monkeypatch):
    task = TinyTask()
    # TinyTask: 84 weights, plus Adam's two slots and its counters.
    assert checkpoints.checkpoint_bytes({"model": task.model}) == 84 * 4
    real_usage = checkpoints.shutil.disk_usage
    monkeypatch.setattr(checkpoints.shutil, "disk_usage",
                        lambda path: real_usage(path)._replace(free=10 * 2**20))
    with pytest.raises(OSError, match="--workdir: not enough free disk space.*10 MB free"):
        train_loop.train(task, make_dataset, config(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_the_disk_check_counts_the_milestones_still_to_be_kept(tmp_path, monkeypatch):
    """3 kept + 1 in flight + 5 milestones (steps 2, 4, ... 10) of 1 MB each, plus the
    100 MB margin: a disk with 106 MB free holds the first 4 but not all 9."""
    one = 2**20
    real_usage = checkpoints.shutil.disk_usage
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: real_usage(path)._replace(
        free=checkpoints.DISK_MARGIN_BYTES + 6 * one))
    checkpoints.check_free_space(str(tmp_path / "ckpts"), one, keep=3)
    milestones = checkpoints.milestones_to_come(config(tmp_path, num_steps=10,
                                                       checkpoint_every=2, milestone_every=2))
    assert milestones == 5
    with pytest.raises(OSError, match=r"106 MB free, 109 MB needed .*5 more from --milestone_every"):
        checkpoints.check_free_space(str(tmp_path / "ckpts"), one, keep=3,
                                     milestones=milestones)


def test_a_failed_save_keeps_the_previous_checkpoint_and_resume_uses_it(tmp_path, monkeypatch):
    keras.utils.set_random_seed(5)
    train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=2))
    real_save = tf.train.CheckpointManager.save

    def save_that_dies_half_way(manager, checkpoint_number=None, **kwargs):
        # Part of the data is on disk, then the write fails (a full disk, a kill).
        prefix = os.path.join(manager.directory, f"ckpt-{checkpoint_number}")
        with open(prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"\0" * 10)
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_that_dies_half_way)
    with pytest.raises(OSError, match="checkpoint of step 4.*previous checkpoint is kept"):
        train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=6))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    result = train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=6))
    assert result.step == 6
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]


def test_batch_must_split_evenly_over_replicas():
    four_replicas = types.SimpleNamespace(num_replicas_in_sync=4)
    assert devices.check_batch_divides(8, four_replicas) == 2
    with pytest.raises(ValueError, match=r"--batch_size \(6\).*multiple of the number of "
                                         r"replicas \(4\)"):
        devices.check_batch_divides(6, four_replicas)


def test_multi_worker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="--strategy=multi_worker needs the TF_CONFIG"):
        devices.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        devices.make_strategy("multi_worker")


@pytest.mark.parametrize("tf_config, chief", [
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": 0}}', False),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", '
     '"index": 0}}', True),
])
def test_only_the_chief_writes_the_run_files(monkeypatch, tf_config, chief):
    assert devices.chief_task(json.loads(tf_config)) is chief
    monkeypatch.setenv("TF_CONFIG", tf_config)
    # TF_CONFIG only matters to a multi-worker strategy.
    assert devices.is_chief(tf.distribute.get_strategy())


def test_a_signal_during_start_up_stops_the_run_before_its_first_step(tmp_path):
    """A SIGINT that start-up received (its StopRequest installed, the flag set) is
    not lost: the loop saves and stops before any step, and start-up's own check
    ends the command as Ctrl-C does."""
    stop = train_loop.StopRequest()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            stop.raise_if_requested()
        result = train_loop.train(TinyTask(), make_dataset, config(tmp_path, num_steps=4),
                                  stop=stop)
    assert result.interrupted and result.step == 0
    assert not (tmp_path / "metrics.jsonl").exists()  # no step trained, none logged
    train_loop.StopRequest().raise_if_requested()  # nothing requested: no exception
