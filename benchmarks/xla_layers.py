r"""Which layers XLA makes slower: every layer of a paper's networks timed alone, XLA off and on.

  python benchmarks/xla_layers.py --paper=glcic --config=paper.cfg --batch_size=2
  XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/xla_layers.py --paper=dmfn ...

For each layer of each network of the task (the Keras models among its
checkpoint items), one forward pass on random inputs of the layer's own shape
and the gradients with respect to the inputs and the weights, compiled twice:
a plain tf.function and one with jit_compile=True. The two are timed in
alternation (--repeats rounds), so a machine shared with other work slows both
alike, and each layer's best round is kept. Layers of the same kind (class,
kernel, stride, dilation, channels) are summed; the table lists the kinds by
how much time XLA adds. The last line printed is one JSON object.

This finds the ops to blame when a whole train step is slower under XLA
(benchmarks/train_throughput.py --jit_compile); the step also fuses the
element-wise work between layers, which this per-layer view does not see.
"""

import collections
import functools
import json
import sys
import time

import keras
import tensorflow as tf
from absl import flags

from common import cli
from common import config_flags
from common import devices
from reproductions import papers


flags.DEFINE_integer("repeats", 3, "Timed rounds per layer (each times XLA off, then on).")
flags.DEFINE_integer("top", 12, "Layer kinds listed.")
FLAGS = flags.FLAGS


def layer_kind(layer: keras.layers.Layer) -> str:
    """A short name for what the layer computes: class, kernel/stride/dilation, channels."""
    config = layer.get_config()
    parts = [type(layer).__name__]
    for key, short in (("kernel_size", "k"), ("strides", "s"), ("dilation_rate", "d")):
        value = config.get(key)
        if value is not None:
            value = value[0] if isinstance(value, (list, tuple)) else value
            if short == "k" or value != 1:
                parts.append(f"{short}{value}")
    if config.get("filters"):
        parts.append(f"c{config['filters']}")
    return " ".join(parts)


def concrete_input_shapes(model: keras.Model, batch_size: int, image_size: int) -> list[tuple]:
    """The model's input shapes, batch and any unknown side (a fully convolutional
    network's) filled in."""
    return [(batch_size,) + tuple(image_size if d is None else d for d in t.shape[1:])
            for t in model.inputs]


def inputs_of_every_layer(model: keras.Model, batch_size: int,
                          image_size: int) -> dict[str, list[tf.Tensor]]:
    """{layer name: the tensors it receives} from one forward pass on random inputs."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    inputs = [tf.random.uniform(shape) for shape in concrete_input_shapes(model, batch_size,
                                                                         image_size)]
    received = probe(inputs if len(inputs) > 1 else inputs[0], training=True)
    return {layer.name: list(value) if isinstance(value, (list, tuple)) else [value]
            for layer, value in zip(layers, received)}


def forward_and_gradients(layer: keras.layers.Layer, single: bool):
    """f(inputs) -> the gradients of sum(layer(inputs)) w.r.t. inputs and weights."""
    def run(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            output = layer(inputs[0] if single else inputs, training=True)
            total = tf.reduce_sum(tf.cast(output, tf.float32))
        return tape.gradient(total, [*inputs, *layer.trainable_variables])
    return run


def seconds_of_call(function, inputs) -> float:
    """Wall time of one call, waiting for its results."""
    start = time.perf_counter()
    results = function(inputs)
    [r.numpy() for r in results if r is not None]
    return time.perf_counter() - start


def time_layer(layer: keras.layers.Layer, inputs: list[tf.Tensor], repeats: int) -> dict:
    """Best seconds of the layer's forward and gradients, XLA off and on."""
    run = forward_and_gradients(layer, len(inputs) == 1)
    plain, xla = tf.function(run), tf.function(run, jit_compile=True)
    for compiled in (plain, xla):  # trace and compile, untimed
        seconds_of_call(compiled, inputs)
    times = {"plain": [], "xla": []}
    for _ in range(repeats):
        times["plain"].append(seconds_of_call(plain, inputs))
        times["xla"].append(seconds_of_call(xla, inputs))
    return {mode: min(seconds) for mode, seconds in times.items()}


def network_layers(task, batch_size: int, image_size: int):
    """(network name, layer, its inputs) for every layer of the task's Keras models."""
    found = []
    for name, item in task.checkpoint_items().items():
        if isinstance(item, keras.Model):
            received = inputs_of_every_layer(item, batch_size, image_size)
            found += [(name, layer, received[layer.name]) for layer in item.layers
                      if layer.name in received]
    return found


def kinds_table(rows: list[dict], top: int) -> str:
    """Markdown: layer kinds by the time XLA adds (summed over the kind's layers)."""
    kinds = collections.defaultdict(lambda: {"count": 0, "plain": 0.0, "xla": 0.0})
    for row in rows:
        entry = kinds[(row["network"], row["kind"])]
        entry["count"] += 1
        entry["plain"] += row["plain"]
        entry["xla"] += row["xla"]
    order = sorted(kinds.items(), key=lambda item: item[1]["plain"] - item[1]["xla"])
    lines = ["| network | layer kind | layers | ms, XLA off | ms, XLA on | on / off |",
             "|---|---|---|---|---|---|"]
    for (network, kind), entry in order[:top]:
        lines.append(f"| {network} | {kind} | {entry['count']} | {1000 * entry['plain']:.1f} | "
                     f"{1000 * entry['xla']:.1f} | {entry['xla'] / entry['plain']:.2f} |")
    plain, xla = sum(r["plain"] for r in rows), sum(r["xla"] for r in rows)
    lines.append(f"| all | {len(rows)} layers | | {1000 * plain:.1f} | {1000 * xla:.1f} | "
                 f"{xla / plain:.2f} |")
    return "\n".join(lines)


def main(paper: papers.Paper, argv):
    del argv
    config = config_flags.from_flags(paper.config)
    devices.set_precision(FLAGS.mixed_precision)
    task = paper.build_task(config)
    rows = []
    layers = network_layers(task, FLAGS.batch_size, config.image_size)
    for index, (network, layer, inputs) in enumerate(layers):
        seconds = time_layer(layer, inputs, FLAGS.repeats)
        rows.append({"network": network, "layer": layer.name, "kind": layer_kind(layer),
                     **seconds})
        print(f"[{index + 1}/{len(layers)}] {network}/{layer.name} ({rows[-1]['kind']}): "
              f"{1000 * seconds['plain']:.1f} ms off, {1000 * seconds['xla']:.1f} ms on",
              file=sys.stderr)
    print(kinds_table(rows, FLAGS.top))
    print(json.dumps({"paper": FLAGS.paper, "config": FLAGS.config,
                      "batch_size": FLAGS.batch_size, "mixed_precision": FLAGS.mixed_precision,
                      "device": papers.device_description(),
                      "layers": rows}))


if __name__ == "__main__":
    paper = papers.paper_from_argv(default="glcic")  # the paper decides which flags exist
    papers.insert_config_flagfile(paper.name)
    cli.run_app(functools.partial(main, paper), __doc__, __name__, papers.__name__,
                         paper.config.__module__, cli.__name__)
