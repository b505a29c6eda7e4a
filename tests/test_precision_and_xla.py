"""Every paper's step under XLA and mixed precision, run by the training loop's own code.

For each paper, with its small test networks: float16 steps (XLA-compiled, with
a loss-scale optimizer per network) and bfloat16 steps are finite, report
float32 losses and move the weights; and the XLA-compiled float32 step gives
the plain step's losses.
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import devices
from common import train_loop
from helpers import first_batch

PAPERS = {  # paper -> (test module's config factory, phases to run)
    "context_encoder": ("tiny_config", (0,)),
    "glcic": ("small_config", (2,)),  # joint: both networks
    "structural_inpainting": ("tiny_config", (1,)),  # joint
    "dmfn": ("small_config", (0,)),
}


def two_steps(paper, precision="none", jit_compile=False, initial=None):
    """Two steps of every listed phase: (task, losses per phase, largest weight change,
    initial weights). `initial`: start from these weights instead of seed 0's."""
    factory, phases = PAPERS[paper]
    train_lib = importlib.import_module(f"reproductions.{paper}.train_lib")
    config = getattr(importlib.import_module(f"test_{paper}"), factory)()
    keras.utils.set_random_seed(0)  # first: the shuffle order depends on the global seed
    batch = first_batch(train_lib, config, batch_size=2)
    devices.set_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        task = train_lib.build_task(config)
        task.build_optimizers()
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        models = [m for m in task.checkpoint_items().values() if isinstance(m, keras.Model)]
        if initial is not None:
            for model, weights in zip(models, initial):
                model.set_weights(weights)
        initial = [m.get_weights() for m in models]
        before = [w.numpy().copy() for m in models for w in m.trainable_weights]
        iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
        loops = train_loop.compiled_loops(task, tf.distribute.get_strategy(),
                                          jit_compile=jit_compile, step_var=step_var)
        results = []
        for phase in phases:
            losses, all_finite, _ = loops(phase)(iterator, tf.constant(2, tf.int64))
            assert bool(all_finite)
            results.append(losses)
        change = max(float(np.max(np.abs(w.numpy() - b)))
                     for w, b in zip((w for m in models for w in m.trainable_weights), before))
        return task, results, change, initial
    finally:
        devices.set_precision("none")


# GLCIC and DMFN take ~40 s each to compile; they run under XLA in the float16 test.
@pytest.mark.parametrize("paper", ["context_encoder", "structural_inpainting"])
def test_xla_step_gives_the_float32_losses(paper):
    _, plain, _, initial = two_steps(paper)
    _, xla, change, _ = two_steps(paper, jit_compile=True, initial=initial)
    assert change > 0
    for plain_losses, xla_losses in zip(plain, xla):
        for key, value in plain_losses.items():
            assert float(xla_losses[key]) == pytest.approx(float(value), rel=1e-3, abs=1e-4), key


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("paper", PAPERS)
def test_mixed_precision_steps_are_finite_and_train(paper, precision):
    task, results, change, _ = two_steps(paper, precision, jit_compile=precision == "float16")
    optimizers = [v for v in task.checkpoint_items().values()
                  if isinstance(v, keras.optimizers.Optimizer)]
    assert optimizers and all(
        isinstance(o, keras.optimizers.LossScaleOptimizer) == (precision == "float16")
        for o in optimizers)
    for losses in results:
        assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in losses.values())
    assert change > 0
