"""Several replicas train exactly like one device: two logical CPUs stand in for two GPUs.

Each case runs in a subprocess, because logical devices must be configured
before TensorFlow starts. For every paper, the same networks (same initial
weights, its smoke config) take two steps on the same batch, in the paper's last
phase (where every network trains), once on one device and once under
`MirroredStrategy` over two CPUs with half of the batch each; the losses of both
steps and the final weights must agree. This checks the per-replica loss
scaling, the synchronised BatchNorm statistics and the global batch means of
the relativistic GAN losses.
"""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO
from reproductions import papers

SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
sys.path.insert(0, {tests!r})
import helpers
from common import devices
from common import train_loop
from reproductions import papers
record = papers.get({paper!r})
config = helpers.smoke_config({paper!r})
batch = helpers.first_batch(record, config, batch_size=4)

def models(task):
    return {{k: v for k, v in task.checkpoint_items().items() if isinstance(v, keras.Model)}}

initial, results = None, {{}}
for name in ("default", "mirrored"):
    strategy = devices.make_strategy(name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        task = record.build_task(config)
        task.build_optimizers()
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    if initial is None:
        initial = {{k: m.get_weights() for k, m in models(task).items()}}
    else:
        for k, m in models(task).items():
            m.set_weights(initial[k])
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    phase = task.phase_at(10 ** 9)  # the last phase
    run = train_loop.compiled_loops(task, strategy, jit_compile=False,
                                    step_var=step_var)(phase)
    losses = [{{k: float(v) for k, v in run(iterator, tf.constant(1, tf.int64))[0].items()}}
              for _ in range(2)]
    weights = np.concatenate([np.ravel(w) for m in models(task).values()
                              for w in m.get_weights()])
    results[name] = {{"replicas": strategy.num_replicas_in_sync, "losses": losses,
                      "weights": weights}}
one, two = results["default"], results["mirrored"]
print(json.dumps({{
    "replicas": [one["replicas"], two["replicas"]],
    "losses": [one["losses"], two["losses"]],
    "weight_difference": float(np.linalg.norm(one["weights"] - two["weights"])),
    "weight_change": float(np.linalg.norm(one["weights"] - np.concatenate(
        [np.ravel(w) for ws in initial.values() for w in ws]))),
}}))
"""

@pytest.mark.parametrize("paper", papers.PAPERS)
def test_two_replicas_train_like_one_device(paper):
    tests = os.path.dirname(os.path.abspath(__file__))
    script = SCRIPT.format(tests=tests, paper=paper)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2]
    one_device, two_replicas = report["losses"]
    # Float tolerance: the first step sees identical weights; the second sees
    # weights after an update, where rounding differences (summation order,
    # E[x^2] - E[x]^2 in synchronised BatchNorm) are amplified by Adam and
    # ADADELTA. Without synchronised BatchNorm the first step's losses already
    # differ by far more (GLCIC's completion loss by 3%, CE's L2 by 0.1%).
    # The discriminators' losses after one update are the most sensitive: GLCIC's
    # step-1 adversarial loss moves by 1.2 % when only the float32 formula of the
    # one-device batch moments changes (a rounding-level change), so step 1 holds
    # them to 2 %; step 0, with identical weights, holds every loss to 1e-4.
    for step, tolerance in ((0, 1e-4), (1, 2e-3)):
        assert one_device[step].keys() == two_replicas[step].keys()
        for key, value in one_device[step].items():
            rel = 2e-2 if step == 1 and key in ("adversarial", "d_loss") else tolerance
            assert two_replicas[step][key] == pytest.approx(value, rel=rel, abs=1e-5), \
                (step, key)
    # The weights moved, and moved the same way.
    assert report["weight_change"] > 1e-3
    assert report["weight_difference"] < 1e-2 * report["weight_change"]
