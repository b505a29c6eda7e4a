"""benchmarks/compare_runs.py: two runs' held-out metrics and last losses side by side."""

import json
import os
import subprocess
import sys

import helpers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "compare_runs.py")


def _write_run(workdir, records):
    workdir.mkdir(parents=True)
    with open(workdir / "metrics.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def _train(step, loss, speed):
    return {"step": step, "split": "train", "phase": "joint", "images_per_second": speed,
            "mse": loss}


def _compare(*arguments):
    return subprocess.run([sys.executable, SCRIPT, *map(str, arguments)], capture_output=True,
                          text=True, timeout=120, cwd=helpers.REPO)


def test_tables_put_each_step_and_loss_side_by_side(tmp_path):
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    _write_run(fp32, [_train(10, 0.5, 10.0), _train(20, 0.3, 12.0), _train(30, 0.1, 14.0),
                      {"step": 30, "split": "eval", "psnr": 25.0, "l1_hole": 0.1}])
    _write_run(bf16, [_train(10, 0.6, 20.0), _train(20, 0.2, 24.0),
                      {"step": 20, "split": "eval", "psnr": 24.5, "l1_hole": 0.12}])
    result = _compare(fp32, bf16, "--metrics=psnr,l1_hole", "--last=2")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert f"| step | {fp32} psnr | {fp32} l1_hole | {bf16} psnr | {bf16} l1_hole |" in lines
    assert "| 20 | – | – | 24.5000 | 0.1200 |" in lines  # a step only one run evaluated
    assert "| 30 | 25.0000 | 0.1000 | – | – |" in lines
    # Mean speed over every log; the loss averaged over the last two logs only.
    assert f"| {fp32} | 30 | 12.0 | 0.2 |" in lines  # (10 + 12 + 14) / 3, (0.3 + 0.1) / 2
    assert f"| {bf16} | 20 | 22.0 | 0.4 |" in lines  # (20 + 24) / 2, (0.6 + 0.2) / 2


def test_figure_draws_the_shared_loss_and_names_a_missing_one(tmp_path):
    fp32, other = tmp_path / "fp32", tmp_path / "other"
    _write_run(fp32, [_train(10, 0.5, 10.0), {"step": 10, "split": "eval", "psnr": 25.0}])
    _write_run(other, [{"step": 10, "split": "train", "phase": "joint",
                        "images_per_second": 5.0, "l2": 0.4}])
    figure = tmp_path / "curves.png"
    drawn = _compare(fp32, fp32, f"--figure={figure}")
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert figure.stat().st_size > 5_000 and f"Wrote {figure}" in drawn.stdout
    unshared = _compare(fp32, other, f"--figure={tmp_path / 'none.png'}")
    assert unshared.returncode != 0 and "--loss" in unshared.stderr
    assert not (tmp_path / "none.png").exists()


def test_a_folder_without_metrics_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _compare(tmp_path / "empty")
    assert result.returncode != 0
    assert f"{tmp_path / 'empty'}" in result.stderr and "no metrics" in result.stderr
    assert "name one or more" in _compare().stderr
