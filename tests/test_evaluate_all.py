"""benchmarks/evaluate_all.py: every method on the same images, and the README table."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "evaluate_all.py")


def test_evaluate_all_writes_the_table_into_the_readme(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(2):
        photo = np.stack([yy * 4 + i * 20, xx * 3, 0 * yy + 120], -1).astype(np.uint8)
        Image.fromarray(photo).save(images / f"photo{i}.png")
    readme = tmp_path / "README.md"
    readme.write_text("# Results\n<!-- results:demo:start -->\nold\n<!-- results:demo:end -->\n"
                      "after\n")
    result = subprocess.run(
        [sys.executable, SCRIPT, f"--images={images}", "--masks=center", "--image_size=32",
         "--baselines=telea,mean_fill", f"--output={tmp_path / 'out'}", f"--readme={readme}",
         "--name=demo"], capture_output=True, text=True, timeout=300, cwd=helpers.REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- results:demo:end -->\nafter\n")
    assert "2 images, centre-cropped and resized to 32x32" in text and "hardware: " in text
    rows = [line for line in text.splitlines() if line.startswith("| telea")
            or line.startswith("| mean_fill")]
    assert len(rows) == 2
    assert (tmp_path / "out" / "telea" / "metrics.json").exists()
    assert (tmp_path / "out" / "results.md").read_text().strip() in text
