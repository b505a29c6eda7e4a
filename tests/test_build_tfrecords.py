"""Tests of common/tfrecords.py and the data/build_tfrecords.py command line."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common import tfrecords

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_SHARDS = 3

# Relative path -> whether decoding must give back the exact original pixels.
GOOD_IMAGES = {
    "photo.jpg": False,
    "plain.png": True,
    "gray.png": True,
    "alpha.png": True,
    "picture.bmp": True,
    "lossless.webp": True,
    "sub/dir/nested.png": True,
}


def _make_images(folder: str) -> None:
    """Writes small test images of several formats and modes, and one corrupt file."""
    rng = np.random.default_rng(0)

    def pixels(height, width, channels):
        return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)

    os.makedirs(os.path.join(folder, "sub", "dir"))
    Image.fromarray(pixels(12, 16, 3)).save(os.path.join(folder, "photo.jpg"), quality=90)
    Image.fromarray(pixels(10, 8, 3)).save(os.path.join(folder, "plain.png"))
    Image.fromarray(pixels(9, 7, 1)[..., 0], mode="L").save(os.path.join(folder, "gray.png"))
    Image.fromarray(pixels(6, 11, 4), mode="RGBA").save(os.path.join(folder, "alpha.png"))
    Image.fromarray(pixels(5, 4, 3)).save(os.path.join(folder, "picture.bmp"))
    Image.fromarray(pixels(8, 9, 3)).save(os.path.join(folder, "lossless.webp"), lossless=True)
    Image.fromarray(pixels(7, 13, 3)).save(os.path.join(folder, "sub", "dir", "nested.png"))
    with open(os.path.join(folder, "broken.jpg"), "wb") as f:
        f.write(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())


def _read_records(paths: list[str]) -> dict[str, bytes]:
    """Returns filename -> encoded image of every record in `paths`."""
    records = {}
    for serialized in tf.data.TFRecordDataset(paths):
        features = tf.io.parse_single_example(serialized, tfrecords.FEATURES)
        name = features["image/filename"].numpy().decode("utf-8")
        assert name not in records, f"duplicate record {name}"
        records[name] = features["image/encoded"].numpy()
    return records


def _mtimes(paths: list[str]) -> list[int]:
    return [os.stat(p).st_mtime_ns for p in paths]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Builds the shards once (with a worker pool); returns (input_dir, prefix, summary)."""
    root = tmp_path_factory.mktemp("build")
    input_dir = str(root / "images")
    _make_images(input_dir)
    prefix = str(root / "out" / "train")  # The "out" folder does not exist yet.
    summary = tfrecords.build_tfrecords(input_dir, prefix, NUM_SHARDS, num_workers=2)
    return input_dir, prefix, summary


@pytest.fixture
def copied(built, tmp_path):
    """A private copy of the built shards, for tests that change them."""
    input_dir, prefix, _ = built
    os.makedirs(tmp_path / "out")
    for path in tfrecords.shard_paths(prefix, NUM_SHARDS):
        shutil.copy2(path, tmp_path / "out")
    return input_dir, str(tmp_path / "out" / "train")


def test_shard_paths_and_round_robin():
    assert tfrecords.shard_paths("/o/train", 2) == [
        "/o/train-00000-of-00002.tfrecord", "/o/train-00001-of-00002.tfrecord"]
    shards = tfrecords.assign_shards(["e", "a", "d", "b", "c"], 2)
    assert shards == [["a", "c", "e"], ["b", "d"]]
    with pytest.raises(ValueError, match="num_shards"):
        tfrecords.assign_shards(["a"], 0)


def test_build_writes_all_good_images(built):
    input_dir, prefix, summary = built
    paths = tfrecords.shard_paths(prefix, NUM_SHARDS)
    assert sorted(glob.glob(prefix + "-*")) == paths
    assert summary["shards_written"] == NUM_SHARDS and summary["shards_skipped"] == 0
    assert summary["images"] == summary["images_written"] == len(GOOD_IMAGES)
    assert summary["files_skipped"] == 1
    assert list(summary["unreadable_files"]) == ["broken.jpg"]

    records = _read_records(paths)
    assert sorted(records) == sorted(GOOD_IMAGES)  # Relative names; broken.jpg absent.
    for name, lossless in GOOD_IMAGES.items():
        decoded = tf.io.decode_image(records[name], channels=3, expand_animations=False).numpy()
        with Image.open(os.path.join(input_dir, name)) as image:
            expected = np.asarray(image.convert("RGB"))
        assert decoded.shape == expected.shape, name
        if lossless:
            np.testing.assert_array_equal(decoded, expected, err_msg=name)

    # JPEG bytes are stored untouched; WEBP is re-encoded to PNG.
    with open(os.path.join(input_dir, "photo.jpg"), "rb") as f:
        assert records["photo.jpg"] == f.read()
    assert records["lossless.webp"].startswith(b"\x89PNG")


def test_parse_example_in_graph_mode(built):
    _, prefix, _ = built
    dataset = tf.data.TFRecordDataset(tfrecords.shard_paths(prefix, NUM_SHARDS))
    dataset = dataset.map(tfrecords.parse_example).map(
        lambda encoded: tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False)))
    shapes = [tuple(s) for s in dataset.as_numpy_iterator()]
    assert len(shapes) == len(GOOD_IMAGES)
    assert all(s[2] == 3 for s in shapes)


def test_rerun_skips_finished_shards(copied):
    input_dir, prefix = copied
    paths = tfrecords.shard_paths(prefix, NUM_SHARDS)
    before = _mtimes(paths)
    summary = tfrecords.build_tfrecords(input_dir, prefix, NUM_SHARDS, num_workers=2)
    assert summary["shards_written"] == 0 and summary["shards_skipped"] == NUM_SHARDS
    assert summary["images"] == len(GOOD_IMAGES) and summary["images_written"] == 0
    assert _mtimes(paths) == before


def test_rerun_rewrites_only_missing_shard(copied):
    input_dir, prefix = copied
    paths = tfrecords.shard_paths(prefix, NUM_SHARDS)
    with open(paths[1], "rb") as f:
        original = f.read()
    os.remove(paths[1])
    # A leftover from an interrupted run must not count as finished.
    with open(paths[1] + ".tmp", "wb") as f:
        f.write(b"partial")
    before = _mtimes([paths[0], paths[2]])
    summary = tfrecords.build_tfrecords(input_dir, prefix, NUM_SHARDS, num_workers=2)
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 2
    assert _mtimes([paths[0], paths[2]]) == before
    assert not os.path.exists(paths[1] + ".tmp")
    with open(paths[1], "rb") as f:
        assert f.read() == original  # Deterministic: same images, same bytes.
    assert sorted(_read_records(paths)) == sorted(GOOD_IMAGES)


def test_other_shard_count_raises(copied):
    input_dir, prefix = copied
    with pytest.raises(ValueError, match=r"train-00000-of-00003\.tfrecord"):
        tfrecords.build_tfrecords(input_dir, prefix, NUM_SHARDS + 1, num_workers=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_shards=0, num_workers=1), "--num_shards"),
    (dict(num_shards=1, num_workers=0), "--num_workers"),
])
def test_bad_arguments_raise(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfrecords.build_tfrecords(str(tmp_path), str(tmp_path / "out" / "train"), **kwargs)


def test_missing_or_empty_input_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        tfrecords.build_tfrecords(str(tmp_path / "missing"), str(tmp_path / "o"), 1, 1)
    with pytest.raises(ValueError, match="No usable image"):
        tfrecords.build_tfrecords(str(tmp_path), str(tmp_path / "o"), 1, 1)


def test_folder_as_output_raises(built, tmp_path):
    input_dir, _, _ = built
    with pytest.raises(ValueError, match="file prefix"):
        tfrecords.build_tfrecords(input_dir, str(tmp_path), 1, 1)


def test_cli_end_to_end(built, tmp_path):
    input_dir, _, _ = built
    prefix = tmp_path / "cli" / "train"
    env = dict(os.environ)
    # Stands in for `pip install -e .`; the working directory is deliberately elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "data", "build_tfrecords.py"),
         f"--input_dir={input_dir}", f"--output={prefix}", "--num_shards=2", "--num_workers=2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["shards_written"] == 2 and summary["images"] == len(GOOD_IMAGES)
    assert summary["unreadable_files"].keys() == {"broken.jpg"}
    assert len(glob.glob(f"{prefix}-0000?-of-00002.tfrecord")) == 2


def test_cli_mistakes_are_one_line_naming_the_flag_or_folder(built, tmp_path):
    input_dir, _, _ = built
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    empty = tmp_path / "empty"
    empty.mkdir()
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    os.chmod(read_only, 0o555)

    def run(*args):
        return subprocess.run(
            [sys.executable, os.path.join(REPO_ROOT, "data", "build_tfrecords.py"), *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert run(f"--input_dir={input_dir}", f"--output={tmp_path}/out/train",
               "--num_shards=2").returncode == 0
    cases = [
        ((f"--input_dir={tmp_path}/missing", f"--output={tmp_path}/o/train"), "missing"),
        ((f"--input_dir={empty}", f"--output={tmp_path}/o/train"), "No usable image"),
        ((f"--input_dir={input_dir}", f"--output={tmp_path}"), "file prefix"),
        ((f"--input_dir={input_dir}", f"--output={tmp_path}/out/train", "--num_shards=3"),
         "--num_shards"),
    ]
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder cannot be made here
        cases.append(((f"--input_dir={input_dir}", f"--output={read_only}/train"),
                      "is not writable"))
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 1, (args, result.stderr[-1000:])
        assert "Traceback" not in result.stderr, args
        assert any(line.startswith("error: ") for line in result.stderr.splitlines()), args
        assert message in result.stderr, (args, result.stderr[-1000:])
