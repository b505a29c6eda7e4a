"""benchmarks/input_throughput.py: the input pipeline alone, from a folder and from TFRecords."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "input_throughput.py")


def _run(tmp_path, *args):
    # A private TMPDIR shows whether the temporary shards are cleaned up.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=300, cwd=helpers.REPO, env=env)


def test_times_the_folder_and_its_tfrecord_shards(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        pixels = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"photo{i}.jpg", quality=90)

    result = _run(tmp_path, "--paper=context_encoder", "--config=paper_center.cfg",
                  f"--train_data={photos}", "--batch_size=2", "--batches=3", "--warmup=1",
                  "--tfrecord_shards=2")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"paper", "config", "batch_size", "images_per_second", "startup_seconds",
            "tfrecord_build_seconds", "device"} <= set(report)
    assert (report["paper"], report["config"], report["batch_size"]) == (
        "context_encoder", "paper_center.cfg", 2)
    assert set(report["images_per_second"]) == {"folder", "tfrecord"}
    assert all(v > 0 for v in report["images_per_second"].values())
    assert "folder: " in result.stderr and "tfrecord: " in result.stderr
    assert "CPU (" in report["device"]
    assert not os.listdir(tmp_path / "tmp"), "the temporary TFRecord shards were left behind"


def test_tfrecord_shards_need_a_folder(tmp_path):
    result = _run(tmp_path, "--train_data=sample", "--tfrecord_shards=2", "--batches=1")
    assert result.returncode != 0
    assert "--tfrecord_shards needs a folder" in result.stderr
