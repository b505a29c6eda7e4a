"""benchmarks/colour_follow.py: the share of the picture's colour a fill follows."""

import functools
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "colour_follow.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@functools.cache  # once: a second load would define its flags again
def load_script():
    spec = importlib.util.spec_from_file_location("colour_follow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def picture_and_hole():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (24, 24, 3)).astype(np.float32)
    hole = np.zeros((24, 24), bool)
    hole[8:14, 5:20] = True
    return image, hole


def test_a_fill_of_the_known_pixels_follows_all_a_fixed_colour_none_a_blend_half():
    colour_follow = load_script()
    image, hole = picture_and_hole()

    def mean_of_known(picture, mask):
        return np.where(mask[..., None], picture[~mask].mean(axis=0), picture)

    def grey(picture, mask):
        return np.where(mask[..., None], np.float32(0.5), picture)

    def half_and_half(picture, mask):  # half the known pixels' mean, half a fixed grey
        return (mean_of_known(picture, mask) + grey(picture, mask)) / 2

    np.testing.assert_allclose(colour_follow.follow_ratios(mean_of_known, image, hole, 0.1),
                               [1, 1, 1], atol=1e-5)
    np.testing.assert_allclose(colour_follow.follow_ratios(grey, image, hole, 0.1),
                               [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(colour_follow.follow_ratios(half_and_half, image, hole, 0.1),
                               [0.5, 0.5, 0.5], atol=1e-5)


def test_only_the_shifted_channel_counts():
    colour_follow = load_script()
    image, hole = picture_and_hole()

    def red_from_known_only(picture, mask):  # follows R, paints fixed G and B
        fill = np.array([picture[~mask][:, 0].mean(), 0.3, 0.6], np.float32)
        return np.where(mask[..., None], fill, picture)

    np.testing.assert_allclose(colour_follow.follow_ratios(red_from_known_only, image, hole, 0.05),
                               [1, 0, 0], atol=1e-5)


def test_the_command_on_photos_and_box_holes(tmp_path):
    rng = np.random.default_rng(1)
    for index in range(3):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"photo{index}.png")
    result = subprocess.run([sys.executable, SCRIPT, "--methods=biharmonic,mean_fill",
                             f"--images={tmp_path}", "--masks=bbox", "--image_size=32",
                             "--limit=2"], capture_output=True, text=True, timeout=300,
                            cwd=helpers.REPO, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["images"] == 2 and report["masks"] == "bbox"
    for method in ("biharmonic", "mean_fill"):  # linear in the known pixels: all of it
        np.testing.assert_allclose(report["follow"][method], [1, 1, 1], atol=0.01)
    assert "| method | R | G | B |" in result.stdout and "| mean_fill | 1.00 |" in result.stdout


def test_a_folder_without_photos_is_named(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, f"--images={tmp_path}"],
                            capture_output=True, text=True, timeout=300, cwd=helpers.REPO, env=ENV)
    assert result.returncode == 1
    assert f"--images {str(tmp_path)!r} holds no image" in result.stderr
