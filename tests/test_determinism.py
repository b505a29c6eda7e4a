"""--deterministic: op determinism on, everything seeded; two runs give identical weights."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from common import config_flags
from common import experiment
from helpers import REPO, configs_dir, first_batch, paper_flags, train_script
from reproductions import papers


def train_twice_at_once(tmp_path, paper, *flags):
    """Runs the paper's smoke config in two processes at the same time (sharing the
    cores, as scheduling differs most then); returns their latest checkpoints."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs = [subprocess.Popen(
        [sys.executable, train_script(paper), f"--flagfile={configs_dir(paper)}/smoke.cfg",
         f"--workdir={tmp_path / name}", *flags],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")]
    for run in runs:
        assert run.wait(timeout=900) == 0, run.stderr.read()[-3000:]
    paths = [tf.train.latest_checkpoint(str(tmp_path / name / "checkpoints")) for name in "ab"]
    assert os.path.basename(paths[0]) == os.path.basename(paths[1])
    return paths


def assert_identical_checkpoints(paths):
    readers = [tf.train.load_checkpoint(p) for p in paths]
    names = [n for n, _ in tf.train.list_variables(paths[0])]
    # The networks' weights are compared, not only the step (a checkpoint may name
    # them through the optimizer that holds them).
    assert sum("kernel" in n or "_trainable_variables" in n for n in names) > 10, names
    for name in names:
        np.testing.assert_array_equal(readers[0].get_tensor(name), readers[1].get_tensor(name),
                                      err_msg=name)


def test_two_deterministic_runs_give_identical_weights(tmp_path):
    paths = train_twice_at_once(tmp_path, "context_encoder", "--deterministic", "--seed=3")
    assert "--deterministic=true" in (tmp_path / "a" / "flags.cfg").read_text().splitlines()
    assert_identical_checkpoints(paths)


@pytest.mark.parametrize("paper", papers.PAPERS)
def test_same_flags_give_identical_weights_on_cpu(tmp_path, paper):
    """README's promise, without --deterministic: the smoke configs cross GLCIC's phases
    and Structural Inpainting's stages, and the runs share the two cores."""
    assert_identical_checkpoints(train_twice_at_once(tmp_path, paper))


def test_set_determinism_turns_on_op_determinism_and_seeds():
    script = """
import numpy as np, tensorflow as tf
from tensorflow.python.framework import config  # the query is not in the public API
from common import experiment
experiment.set_determinism(5, deterministic=True)
first = (np.random.rand(), tf.random.uniform([]).numpy())
experiment.set_determinism(5, deterministic=True)
second = (np.random.rand(), tf.random.uniform([]).numpy())
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context
functions = config_pb2.ConfigProto.FromString(
    context.context().function_call_options.config_proto_serialized)
print(config.is_op_determinism_enabled(), first == second,
      functions.graph_options.rewrite_options.memory_optimization
      == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True", "True"]


def test_a_gradient_of_three_terms_repeats_bit_for_bit():
    """Structural Inpainting's joint step at its demo size, from one state, five times.

    Its prediction feeds three losses, so its gradient is a sum of three. Without
    `experiment.sum_gradients_in_fixed_order`, grappler's memory optimizer
    summed them in arrival order whenever free RAM was low against its estimate
    of the step's memory (always, on a 2-core machine with 20 GiB free): the
    generator's weights then differed in the last bit in most repeats.
    """
    experiment.set_determinism(0, deterministic=False)
    paper = papers.get("structural_inpainting")
    config = config_flags.from_flags(paper.config, paper_flags(
        paper.name, f"--flagfile={configs_dir(paper.name)}/demo.cfg"))
    task = paper.build_task(config)
    task.build_optimizers()
    batch = first_batch(paper, config, batch_size=16)
    joint = task.phase_at(config.structural_steps)
    assert joint == 1
    variables = [v for item in task.checkpoint_items().values() for v in item.variables]
    start = [v.numpy() for v in variables]
    step = tf.function(lambda batch: task.train_step(batch, joint))
    results = []
    for _ in range(5):
        for variable, value in zip(variables, start):
            variable.assign(value)
        step(batch)
        results.append([v.numpy() for v in variables])
    assert any(not np.array_equal(a, b) for a, b in zip(start, results[0]))  # it trained
    for result in results[1:]:
        for variable, a, b in zip(variables, results[0], result):
            np.testing.assert_array_equal(a, b, err_msg=variable.path)
