"""Helpers shared by the paper tests: run settings, the CLI, and the metrics log."""

import json
import os
import subprocess
import sys

from common import experiment
from common import flags as common_flags
from common import train_loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_config(workdir, num_steps, batch_size=2, seed=0, strategy="default", **loop):
    """Shared run settings for short test runs on the bundled sample photos.

    Every step is logged and checkpointed unless `loop` says otherwise; sample
    grids and evaluation are left out of the way.
    """
    settings = dict(workdir=str(workdir), num_steps=num_steps, batch_size=batch_size,
                    log_every=1, checkpoint_every=1, sample_every=100, eval_every=100)
    settings.update(loop)
    return common_flags.RunConfig(
        loop=train_loop.LoopConfig(**settings),
        data=common_flags.DataConfig(train_data="sample", eval_data="", eval_examples=8,
                                     batch_size=batch_size, seed=seed, shuffle_buffer=16),
        mixed_precision="none", strategy=strategy)


def first_batch(train_lib, config, batch_size=4):
    """The first training batch of a paper's pipeline on the sample photos."""
    data = run_config("unused", 1, batch_size=batch_size).data
    return next(iter(experiment.make_dataset(train_lib.paper_input(config), data, spec="sample",
                                             training=True, batch_size=batch_size)))


def train_script(paper):
    return os.path.join(REPO, "reproductions", paper, "train.py")


def configs_dir(paper):
    return os.path.join(REPO, "reproductions", paper, "configs")


def run_cli(paper, *args, timeout=300, env=None):
    """Runs `reproductions/PAPER/train.py ARGS` from the repository root (`env`: extra
    environment variables)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, train_script(paper), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


def train_records(workdir):
    """The training lines of workdir/metrics.jsonl."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if '"train"' in line]
