r"""Throughput of a paper's input pipeline alone: no network, no train step.

  python benchmarks/input_throughput.py --paper=context_encoder \
      --config=paper_center.cfg --train_data=/data/photos --batch_size=16 \
      --batches=20 --tfrecord_shards=4

Builds the paper's real training pipeline (`experiment.make_dataset` with the
paper's crop policy and masking step: read, decode, resize, crop, flip, masks,
batch, prefetch) for --train_data, pulls --warmup batches untimed, then times
--batches batches and reports images per second. With --tfrecord_shards=N and a
folder as --train_data, the folder is first packed into N TFRecord shards in a
temporary directory (deleted at the end) and both sources are timed in the same
run, folder first.

Compare images_per_second with the images_per_second of
benchmarks/train_throughput.py for the same --paper, --config and --batch_size:
if the pipeline delivers several times what the step consumes, input is not the
bottleneck; if it is close to it or below, training waits for data. On a
machine without a GPU, training runs the pipeline and the step on the same
cores, so there the pipeline gets less than the whole CPU it had here.

Files are read once before timing (the folder scan, or packing the shards), so
they are likely in the OS page cache: these are decoding numbers, not cold-disk
ones. startup_seconds is the time from building the pipeline to the end of the
warm-up batches (for a folder it includes checking every file once).
The last line printed is one JSON object.
"""

import functools
import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags

from common import cli
from common import config_flags
from common import data as data_lib
from common import experiment
from common import run_configs
from common import tfrecords
from reproductions import papers


flags.DEFINE_integer("batches", 20, "Timed batches per source.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed batches first (tracing, filling buffers).",
                     lower_bound=0)
flags.DEFINE_integer("tfrecord_shards", 0, "If > 0, also pack the --train_data folder into "
                     "this many TFRecord shards in a temporary directory and time them too.",
                     lower_bound=0)
FLAGS = flags.FLAGS


def time_pipeline(dataset_fn, batches: int, warmup: int) -> tuple[float, float]:
    """(start-up seconds, seconds for `batches` batches) of the dataset `dataset_fn()` builds.

    The iterator is local, so its background threads stop when this returns
    and do not compete with the next source's timing.
    """
    start = time.perf_counter()
    iterator = iter(dataset_fn())
    for _ in range(warmup):
        next(iterator)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)  # eager: returns once the batch's tensors are computed
    return startup, time.perf_counter() - start


def main(paper: papers.Paper, argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = config_flags.from_flags(paper.config)
    paper_input = paper.paper_input(config)
    batch_size = FLAGS.batch_size
    data = run_configs.DataConfig(
        train_data=FLAGS.train_data, eval_data="", eval_examples=batch_size,
        batch_size=batch_size, seed=FLAGS.seed, shuffle_buffer=FLAGS.shuffle_buffer)
    kind, _ = data_lib.parse_data_spec(FLAGS.train_data)
    if FLAGS.tfrecord_shards and kind != "folder":
        raise app.UsageError(f"--tfrecord_shards needs a folder as --train_data; "
                             f"{FLAGS.train_data!r} is a {kind} source.")

    results = {"paper": FLAGS.paper, "config": FLAGS.config, "train_data": FLAGS.train_data,
               "batch_size": batch_size, "batches": FLAGS.batches, "warmup": FLAGS.warmup,
               "tfrecord_shards": FLAGS.tfrecord_shards}
    with tempfile.TemporaryDirectory(prefix="input_throughput_") as tmp:
        sources = [(kind, FLAGS.train_data)]
        if FLAGS.tfrecord_shards:
            prefix = os.path.join(tmp, "train")
            start = time.perf_counter()
            # One worker, in this process: reading files into records is cheap,
            # and a spawned worker would first spend seconds importing TensorFlow.
            tfrecords.build_tfrecords(FLAGS.train_data, prefix, FLAGS.tfrecord_shards,
                                      num_workers=1)
            results["tfrecord_build_seconds"] = round(time.perf_counter() - start, 2)
            sources.append(("tfrecord", f"{prefix}-*-of-{FLAGS.tfrecord_shards:05d}.tfrecord"))

        results["images_per_second"], results["startup_seconds"] = {}, {}
        for name, spec in sources:
            startup, seconds = time_pipeline(
                functools.partial(experiment.make_dataset, paper_input, data, spec=spec,
                                  training=True, batch_size=batch_size),
                FLAGS.batches, FLAGS.warmup)
            results["images_per_second"][name] = round(FLAGS.batches * batch_size / seconds, 2)
            results["startup_seconds"][name] = round(startup, 2)
            print(f"{name}: {results['images_per_second'][name]} images/s "
                  f"({1000 * seconds / FLAGS.batches:.0f} ms/batch of {batch_size}; "
                  f"start-up {startup:.1f} s)", file=sys.stderr)
    results["device"] = papers.device_description()
    print(json.dumps(results))


if __name__ == "__main__":
    paper = papers.paper_from_argv()  # the paper decides which flags exist
    papers.insert_config_flagfile(paper.name)
    cli.run_app(functools.partial(main, paper), __doc__, __name__, papers.__name__,
                          paper.config.__module__, cli.__name__)
