"""Runs that survive faults: a training process killed with SIGKILL at random moments.

A real `train.py` subprocess is killed (no handler can run) several times and
restarted with the same command each time. Every restart must resume from the
last checkpoint, which must always be complete and readable, and the run must
end with exactly the weights of an uninterrupted run of the same seed.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from common import run_dir
from helpers import REPO, configs_dir, run_cli, train_script, write_noise_photos

ARGS = [f"--flagfile={configs_dir('context_encoder')}/smoke.cfg", "--max_steps=40",
        "--checkpoint_every=2", "--log_every=2", "--sample_every=1000", "--eval_every=1000",
        "--keep_checkpoints=2"]


def final_weights(workdir):
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return path, {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)}


def readable_step(workdir):
    """Step of the newest checkpoint on disk that reads in full (0 if none): the one a
    restarted run must resume from. Not the index's newest: a kill between a save's data
    files and its index update leaves a whole checkpoint the index does not name yet."""
    path = run_dir.newest_readable(run_dir.checkpoint_dir(str(workdir)), repair=False)
    return 0 if path is None else int(path.rsplit("-", 1)[1])


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_weights(tmp_path):
    straight = run_cli("context_encoder", *ARGS, f"--workdir={tmp_path / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-3000:]

    workdir = tmp_path / "killed"
    command = [sys.executable, train_script("context_encoder"), *ARGS, f"--workdir={workdir}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    rng = random.Random(7)
    # The first kill lands during start-up; the others once the run has saved a
    # randomly chosen step, after a random delay, so they hit training steps and
    # saves alike.
    targets = [None] + sorted(rng.sample(range(4, 38, 2), 3))
    saved_before = 0
    for target in targets:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        if target is None:
            time.sleep(rng.uniform(0.5, 3.0))
        else:
            deadline = time.monotonic() + 120
            while run_dir.latest_step(workdir) < target and process.poll() is None:
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        stderr = process.communicate()[1]
        saved = readable_step(workdir)
        assert saved >= max(saved_before, target or 0)  # checkpoints never go back
        if "Resumed from" in stderr:
            resumed_at = int(re.search(r"Resumed from \S+ at step (\d+)", stderr).group(1))
            assert resumed_at == saved_before  # from the last checkpoint, not an earlier one
        saved_before = saved
    assert saved_before >= targets[-1]

    finish = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert finish.returncode == 0, finish.stderr[-3000:]
    assert f"at step {saved_before} " in finish.stderr  # lost only the unsaved steps

    straight_path, straight_weights = final_weights(tmp_path / "straight")
    killed_path, killed_weights = final_weights(workdir)
    assert straight_path.endswith("ckpt-40") and killed_path.endswith("ckpt-40")
    assert straight_weights.keys() == killed_weights.keys()
    for name, value in straight_weights.items():
        np.testing.assert_array_equal(killed_weights[name], value, err_msg=name)


def test_a_corrupt_record_inside_a_shard_is_named_with_its_index(tmp_path):
    """A flipped byte inside a record passes the start-up framing check; when TensorFlow
    then stops with a DataLossError, the run names the shard and the record."""
    from common import tfrecords

    photos = tmp_path / "photos"
    write_noise_photos(photos, 6, 80)
    tfrecords.build_tfrecords(str(photos), str(tmp_path / "shards" / "train"), 1, 1)
    shard = tmp_path / "shards" / "train-00000-of-00001.tfrecord"
    raw = bytearray(shard.read_bytes())
    offset = 0
    for _ in range(3):  # skip records 0-2: (8-byte length, 4-byte CRC, data, 4-byte CRC)
        offset += 12 + int.from_bytes(raw[offset:offset + 8], "little") + 4
    raw[offset + 12 + 100] ^= 0xFF  # a byte inside record 3's data
    shard.write_bytes(bytes(raw))
    assert tfrecords.framing_problem(str(shard)) is None
    assert tfrecords.corrupt_record(str(shard)).startswith("record 3: ")
    result = run_cli("context_encoder", *ARGS, f"--workdir={tmp_path}/run",
                     f"--train_data={tmp_path}/shards/train-*.tfrecord", "--max_steps=4")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"--train_data: TFRecord shard {shard} is damaged at record 3: " in result.stderr


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """SIGINT while the run is still starting (networks built, data not yet flowing)
    ends with one line and exit code 130; a rerun trains normally."""
    process = subprocess.Popen(
        [sys.executable, train_script("context_encoder"), *ARGS, f"--workdir={tmp_path}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "trainable parameters" in line:
            process.send_signal(signal.SIGINT)
            break
    lines += process.stderr.readlines()
    assert process.wait(timeout=300) == 130, "".join(lines)[-2000:]
    assert not any("Traceback" in line for line in lines), "".join(lines)[-3000:]
    assert run_cli("context_encoder", *ARGS, f"--workdir={tmp_path}",
                   "--max_steps=2").returncode == 0
