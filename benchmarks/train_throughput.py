r"""Training throughput of a paper's real train step (every network updated).

  python benchmarks/train_throughput.py --paper=context_encoder \
      --config=paper_center.cfg --batch_size=16 --steps=20 --jit_compile=false

Feeds one real batch from --train_data (default: the bundled sample photos)
over and over, so the number is the step's, not the input pipeline's. Times
two ways of running the same step:
  * images_per_second: the suite's step, exactly as the training loop runs it
    (tf.distribute, loss reduction, --steps_per_loop steps per call with the
    in-graph TensorBoard summaries, host read of the losses after each call);
  * bare_images_per_second: a plain tf.function of the task's train step,
    called in a loop and synchronised once at the end.
The last line printed is one JSON object. peak_memory_mb is the process's
peak resident memory (CPU) or the device's peak allocation (GPU).

Against the machine's limit: gflop_per_step counts the step's convolutions and
matrix products from its traced graph (common.flops; about 3x the forward
count), gflop_per_second is what the suite's step achieves, and
fraction_of_peak divides it by a large matrix product's rate measured in the
same run and dtype (matmul_gflop_per_second: the compute dtype of
--mixed_precision).
"""

import functools
import json
import resource
import sys
import tempfile
import time

import tensorflow as tf
from absl import flags

from common import cli
from common import config_flags
from common import devices
from common import experiment
from common import flops
from common import run_configs
from common import train_loop
from reproductions import papers


flags.DEFINE_integer("steps", 20, "Timed steps.")
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, XLA compilation).")
flags.DEFINE_integer("phase", 0, "Training phase whose step is timed.")
flags.DEFINE_bool("count_only", False, "Only count the step's FLOPs (no timing, no matrix-"
                  "product peak): seconds even for a paper-size step.")
FLAGS = flags.FLAGS


COMPUTE_DTYPES = {"none": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}


def _peak_memory_mb() -> float:
    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_steps(run_step, steps: int) -> float:
    start = time.perf_counter()
    run_step(steps)
    return time.perf_counter() - start


def main(paper: papers.Paper, argv):
    del argv
    config = config_flags.from_flags(paper.config)
    batch_size = FLAGS.batch_size
    devices.set_precision(FLAGS.mixed_precision)
    strategy = devices.make_strategy(FLAGS.strategy)
    with strategy.scope():
        task = paper.build_task(config)
        task.build_optimizers()
    data = run_configs.DataConfig(
        train_data=FLAGS.train_data, eval_data="", eval_examples=batch_size,
        batch_size=batch_size, seed=FLAGS.seed, shuffle_buffer=FLAGS.shuffle_buffer)
    batch = next(iter(experiment.make_dataset(paper.paper_input(config), data,
                                              spec=FLAGS.train_data, training=True,
                                              batch_size=batch_size)))
    batches = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat()))

    with strategy.scope():
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    writer = tf.summary.create_file_writer(tempfile.mkdtemp(prefix="train_throughput_"))
    suite_loop = train_loop.compiled_loops(task, strategy, jit_compile=FLAGS.jit_compile,
                                           step_var=step_var, writer=writer,
                                           log_every=FLAGS.log_every)(FLAGS.phase)

    def run_suite(n):
        done = 0
        while done < n:
            count = min(FLAGS.steps_per_loop, n - done)
            losses, all_finite, _ = suite_loop(batches, tf.constant(count, tf.int64))
            {k: float(v) for k, v in losses.items()}
            bool(all_finite)
            done += count

    bare_step = tf.function(lambda b: task.train_step(b, FLAGS.phase),
                            jit_compile=FLAGS.jit_compile)

    def run_bare(n):
        losses = None
        for _ in range(n):
            losses = bare_step(batch)
        {k: float(v) for k, v in losses.items()}  # one synchronisation at the end

    results = {"paper": FLAGS.paper, "config": FLAGS.config, "batch_size": batch_size,
               "steps": FLAGS.steps, "steps_per_loop": FLAGS.steps_per_loop,
               "jit_compile": FLAGS.jit_compile,
               "mixed_precision": FLAGS.mixed_precision, "phase": FLAGS.phase}
    step_flops = sum(flops.function_flops(bare_step, batch).values())
    results["gflop_per_step"] = round(step_flops / 1e9, 2)
    results["gflop_per_image"] = round(step_flops / 1e9 / batch_size, 2)
    if FLAGS.count_only:
        print(json.dumps(results))
        return
    for name, runner in (("bare_images_per_second", run_bare),
                         ("images_per_second", run_suite)):
        runner(FLAGS.warmup)
        seconds = _time_steps(runner, FLAGS.steps)
        results[name] = round(FLAGS.steps * batch_size / seconds, 2)
        print(f"{name}: {results[name]} ({1000 * seconds / FLAGS.steps:.0f} ms/step)",
              file=sys.stderr)
    achieved = step_flops * results["images_per_second"] / batch_size
    peak = flops.matmul_peak(COMPUTE_DTYPES[FLAGS.mixed_precision])
    results.update(gflop_per_second=round(achieved / 1e9, 1),
                   matmul_gflop_per_second=round(peak / 1e9, 1),
                   fraction_of_peak=round(achieved / peak, 3))
    print(f"{results['gflop_per_step']} GFLOP/step, {results['gflop_per_second']} GFLOP/s "
          f"= {100 * results['fraction_of_peak']:.0f}% of a matrix product's "
          f"{results['matmul_gflop_per_second']} GFLOP/s", file=sys.stderr)
    results["peak_memory_mb"] = round(_peak_memory_mb(), 1)
    results["device"] = papers.device_description()
    print(json.dumps(results))


if __name__ == "__main__":
    paper = papers.paper_from_argv()  # the paper decides which flags exist
    papers.insert_config_flagfile(paper.name)
    cli.run_app(functools.partial(main, paper), __doc__, __name__, papers.__name__,
                          paper.config.__module__, cli.__name__)
