"""benchmarks/mask_depth.py: hole depth by hole-area bin, for strokes and a mask folder."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "mask_depth.py")


def test_depths_by_bin_and_the_folder_row(tmp_path):
    # Two masks at 16 px, drawn by hand: a vertical line (1/16 of the image, the 0-10 %
    # bin, 1 px deep) and a band of 4 rows (25 %, the 20-30 % bin: rows 1, 2, 2, 1 px
    # from the nearest known one, 1.5 on average).
    folder = tmp_path / "masks"
    folder.mkdir()
    line = np.zeros((16, 16), np.uint8)
    line[:, 3] = 255
    band = np.zeros((16, 16), np.uint8)
    band[6:10] = 255
    Image.fromarray(line).save(folder / "line.png")
    Image.fromarray(band).save(folder / "band.png")
    result = subprocess.run([sys.executable, SCRIPT, f"--masks={folder}", "--image_size=16",
                             "--count=6"], capture_output=True, text=True, timeout=300,
                            cwd=helpers.REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = report["depth_by_bin"]
    folder_row = rows[f"{folder} (evaluation)"]
    assert folder_row[0] == 1.0 and folder_row[2] == 1.5
    assert all(np.isnan(folder_row[k]) for k in (1, 3, 4, 5))
    assert set(rows) == {"strokes (`strokes`)", "depth-matched strokes (`matched_strokes`)",
                         f"{folder} (evaluation)"}
    assert "| hole area | 0-10% |" in result.stdout and "1.5 px" in result.stdout
