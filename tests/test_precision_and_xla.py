"""Every paper's step under XLA and mixed precision, run by the training loop's own code.

For each registered paper, with its smoke config's small networks: float16 steps
(XLA-compiled, with a loss-scale optimizer per network) and bfloat16 steps are
finite, report float32 losses and move the weights; and the XLA-compiled float32
step gives the plain step's losses. The step tested is that of the phase a run
ends in, which trains every network (GLCIC's joint phase, say).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import devices
from common import train_loop
from helpers import first_batch
from helpers import smoke_config
from reproductions import papers

PAPERS = papers.PAPERS
LAST_STEP = 2**62  # any step past a schedule's last phase change


def two_steps(paper, precision="none", jit_compile=False, initial=None):
    """Two steps of the paper's final phase: (task, losses, largest weight change,
    initial weights). `initial`: start from these weights instead of seed 0's."""
    record = papers.get(paper)
    config = smoke_config(paper)
    keras.utils.set_random_seed(0)  # first: the shuffle order depends on the global seed
    batch = first_batch(record, config, batch_size=2)
    devices.set_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        task = record.build_task(config)
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
        losses, all_finite, _ = loops(task.phase_at(LAST_STEP))(iterator,
                                                               tf.constant(2, tf.int64))
        assert bool(all_finite)
        change = max(float(np.max(np.abs(w.numpy() - b)))
                     for w, b in zip((w for m in models for w in m.trainable_weights), before))
        return task, losses, change, initial
    finally:
        devices.set_precision("none")


def test_the_final_phase_trains_every_network():
    """What the tests below rely on: GLCIC's and Structural Inpainting's smoke runs end
    in their joint phase (the only multi-phase papers)."""
    for paper, phase in (("glcic", "joint"), ("structural_inpainting", "joint")):
        task = papers.get(paper).build_task(smoke_config(paper))
        assert task.phase_name(task.phase_at(LAST_STEP)) == phase, paper


@pytest.mark.parametrize("paper", PAPERS)
def test_xla_step_gives_the_float32_losses(paper):
    _, plain, _, initial = two_steps(paper)
    _, xla, change, _ = two_steps(paper, jit_compile=True, initial=initial)
    assert change > 0
    assert plain.keys() == xla.keys()
    for key, value in plain.items():
        assert float(xla[key]) == pytest.approx(float(value), rel=1e-3, abs=1e-4), key


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("paper", PAPERS)
def test_mixed_precision_steps_are_finite_and_train(paper, precision):
    task, losses, change, _ = two_steps(paper, precision, jit_compile=precision == "float16")
    optimizers = [v for v in task.checkpoint_items().values()
                  if isinstance(v, keras.optimizers.Optimizer)]
    assert optimizers and all(
        isinstance(o, keras.optimizers.LossScaleOptimizer) == (precision == "float16")
        for o in optimizers)
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in losses.values())
    assert change > 0
