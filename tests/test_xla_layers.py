"""benchmarks/xla_layers.py: every layer of a paper's networks timed alone, XLA off and on."""

import json
import os
import subprocess
import sys

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "xla_layers.py")


def test_times_every_layer_of_both_networks_and_ranks_the_kinds():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, SCRIPT, "--paper=context_encoder", "--config=smoke.cfg",
                           "--batch_size=2", "--repeats=1", "--top=3"],
                          capture_output=True, text=True, timeout=600, cwd=helpers.REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    layers = result["layers"]
    # The smoke generator and discriminator, every layer but the inputs.
    from reproductions.context_encoder import model
    generator = model.build_generator("center", ngf=8, nef=8, bottleneck=32)
    discriminator = model.build_discriminator("center", ndf=8)
    # By class: Keras numbers unnamed layers per process (re_lu_3, ...).
    expected = [type(layer).__name__ for net in (generator, discriminator)
                for layer in net.layers if type(layer).__name__ != "InputLayer"]
    assert [row["kind"].split()[0] for row in layers] == expected
    assert {row["network"] for row in layers} == {"generator", "discriminator"}
    assert all(row["plain"] > 0 and row["xla"] > 0 for row in layers)
    assert any(row["kind"].startswith("Conv2D k4 s2 c8") for row in layers)
    # The table: the 3 kinds XLA slows most (or speeds least), then the total.
    table = [line for line in lines[:-1] if line.startswith("|")]
    assert table[0].startswith("| network | layer kind |") and len(table) == 2 + 3 + 1
    added = [float(row.split("|")[5]) - float(row.split("|")[4]) for row in table[2:5]]
    # Ranked on unrounded times, printed to 0.1 ms: two roundings of 0.05 ms
    # each may swap neighbours whose true differences lie within 0.1 ms.
    assert all(first >= second - 0.1 - 1e-9 for first, second in zip(added, added[1:])), added
    total = table[-1].split("|")
    assert abs(float(total[4]) - 1000 * sum(r["plain"] for r in layers)) < 0.06
