"""Helpers shared by the paper tests: run settings, the CLI, and the metrics log."""

import dataclasses
import json
import os
import subprocess
import sys

from absl import flags

from common import cli
from common import config_flags
from common import experiment
from common import run_configs
from common import train_loop
from reproductions import papers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_config(workdir, num_steps, batch_size=2, seed=0, strategy="default", **loop):
    """Shared run settings for short test runs on the bundled sample photos.

    Every step is logged and checkpointed unless `loop` says otherwise; sample
    grids and evaluation are left out of the way.
    """
    settings = dict(workdir=str(workdir), num_steps=num_steps, batch_size=batch_size,
                    log_every=1, checkpoint_every=1, sample_every=100, eval_every=100)
    settings.update(loop)
    return run_configs.RunConfig(
        loop=train_loop.LoopConfig(**settings),
        data=run_configs.DataConfig(train_data="sample", eval_data="", eval_examples=8,
                                     batch_size=batch_size, seed=seed, shuffle_buffer=16),
        mixed_precision="none", strategy=strategy)


def paper_flags(paper, *argv):
    """The flags of PAPER's train.py, in their own FlagValues; parsed from `argv` (e.g.
    a --flagfile) if given, its includes found as train.py finds them."""
    values = flags.FlagValues()
    cli.define_paper_flags(papers.get(paper).config, values)
    if argv:
        values(cli.expand_flagfiles(["prog", *argv]))
    return values


def smoke_config(paper, **changes):
    """PAPER's config as its configs/smoke.cfg sets it (the one small config of every
    test: tiny networks, random VGG weights), with `changes` applied."""
    record = papers.get(paper)
    values = paper_flags(paper, f"--flagfile={os.path.join(record.configs_dir(), 'smoke.cfg')}")
    return dataclasses.replace(config_flags.from_flags(record.config, values), **changes)


def first_batch(paper, config, batch_size=4):
    """The first training batch of a paper's pipeline (its record or train_lib) on the
    sample photos."""
    data = run_config("unused", 1, batch_size=batch_size).data
    return next(iter(experiment.make_dataset(paper.paper_input(config), data, spec="sample",
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


def write_noise_photos(folder, count, side):
    """`count` PNG photos of uniform noise, side x side, named p0.png, p1.png, ... in
    `folder` (created); the same pixels on every call."""
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"p{i}.png"))
