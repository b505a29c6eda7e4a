"""benchmarks/progress.py: every kept checkpoint of a run scored beside a classical fill."""

import json
import os
import subprocess
import sys

from PIL import Image

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "progress.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def progress(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=600, cwd=helpers.REPO, env=ENV)


def test_each_kept_step_and_the_fill_get_a_row_a_point_and_are_reused(tmp_path):
    run = tmp_path / "run"
    trained = helpers.run_cli(
        "context_encoder", f"--flagfile={helpers.configs_dir('context_encoder')}/smoke.cfg",
        f"--workdir={run}", "--max_steps=4", "--checkpoint_every=2", "--keep_checkpoints=1",
        "--milestone_every=2")
    assert trained.returncode == 0, trained.stderr[-3000:]
    photos = tmp_path / "photos"
    helpers.write_noise_photos(photos, 3, 140)
    output = tmp_path / "progress"
    args = [f"--run=context_encoder:{run}", f"--images={photos}", "--masks=center",
            "--image_size=128", "--baselines=mean_fill", f"--output={output}"]
    first = progress(*args)
    assert first.returncode == 0, first.stderr[-3000:]

    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:3]
            for line in (output / "progress.md").read_text().splitlines()[2:]}
    assert list(rows) == ["mean_fill", "step 2", "step 4"]  # milestones 2, 4; 4 in checkpoints
    for name, folder in (("mean_fill", "mean_fill"), ("step 2", "step_2"), ("step 4", "step_4")):
        metrics = json.loads((output / folder / "metrics.json").read_text())
        assert metrics["count"] == 3 and metrics["masks"] == "center"
        assert rows[name] == [f"{metrics['overall']['psnr']:.2f}",
                              f"{metrics['overall']['l1_hole']:.4f}"]
    step_2 = json.loads((output / "step_2" / "metrics.json").read_text())
    step_4 = json.loads((output / "step_4" / "metrics.json").read_text())
    assert step_2["overall"]["l1_hole"] != step_4["overall"]["l1_hole"]  # two checkpoints
    with Image.open(output / "progress.png") as figure:
        assert figure.size[0] > 500

    stamps = {p: p.stat().st_mtime_ns for p in output.glob("*/metrics.json")}
    second = progress(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in output.glob("*/metrics.json")} == stamps
    assert "reusing" in second.stderr


def test_a_folder_without_checkpoints_and_an_unknown_fill_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = progress(f"--run=dmfn:{empty}", f"--images={tmp_path}", f"--output={tmp_path}/o",
                      "--baselines=")
    assert result.returncode == 1
    assert f"--run: {empty} keeps no checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
    result = progress(f"--run=dmfn:{empty}", f"--images={tmp_path}", f"--output={tmp_path}/o",
                      "--baselines=bilinear")
    assert result.returncode == 1 and "--baselines: unknown ['bilinear']" in result.stderr
