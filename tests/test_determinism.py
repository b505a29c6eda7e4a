"""--deterministic: op determinism on, everything seeded; two runs give identical weights."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from helpers import REPO, configs_dir, train_script


def test_two_deterministic_runs_give_identical_weights(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs = [subprocess.Popen(
        [sys.executable, train_script("context_encoder"),
         f"--flagfile={configs_dir('context_encoder')}/smoke.cfg",
         f"--workdir={tmp_path / name}", "--deterministic", "--seed=3"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()[-3000:]
    assert "--deterministic=true" in (tmp_path / "a" / "flags.cfg").read_text().splitlines()
    paths = [tf.train.latest_checkpoint(str(tmp_path / name / "checkpoints")) for name in "ab"]
    assert os.path.basename(paths[0]) == os.path.basename(paths[1])
    readers = [tf.train.load_checkpoint(p) for p in paths]
    names = [n for n, _ in tf.train.list_variables(paths[0])]
    assert any(n.startswith("generator/") for n in names)
    for name in names:
        np.testing.assert_array_equal(readers[0].get_tensor(name), readers[1].get_tensor(name),
                                      err_msg=name)


def test_set_determinism_turns_on_op_determinism_and_seeds():
    script = """
import numpy as np, tensorflow as tf
from tensorflow.python.framework import config  # the query is not in the public API
from common import experiment
experiment.set_determinism(5, deterministic=True)
first = (np.random.rand(), tf.random.uniform([]).numpy())
experiment.set_determinism(5, deterministic=True)
second = (np.random.rand(), tf.random.uniform([]).numpy())
print(config.is_op_determinism_enabled(), first == second)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"]
