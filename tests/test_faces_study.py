"""The CPU-scale faces study: its split rule, its tables, and the whole command on a tiny budget."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import helpers
from common import splits
from reproductions import papers

SCRIPT = os.path.join(helpers.REPO, "benchmarks", "faces_study.py")


def test_split_rule_is_a_fixed_function_of_the_file_name_with_no_overlap(tmp_path):
    names = [f"{i}_0_0_2017{i:05d}.jpg" for i in range(2000)]
    train, held_out = splits.split_files(names, percent=10)
    assert not set(train) & set(held_out) and sorted(train + held_out) == sorted(names)
    assert 160 <= len(held_out) <= 240  # 10 % of 2,000, give or take the hash's spread
    # The path does not matter, only the name; adding files moves no other file.
    assert all(splits.is_held_out(os.path.join("/elsewhere", n)) for n in held_out)
    more_train, more_held_out = splits.split_files(names + ["new.jpg"], percent=10)
    assert set(held_out) <= set(more_held_out) and set(train) <= set(more_train)
    with pytest.raises(ValueError, match="percentage"):
        splits.is_held_out("a.jpg", percent=0)


def test_link_split_fills_both_folders_once(tmp_path):
    source = tmp_path / "faces"
    source.mkdir()
    for i in range(30):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(source / f"face{i}.png")
    train_dir, held_dir = tmp_path / "train", tmp_path / "held"
    counts = splits.link_split(str(source), str(train_dir), str(held_dir))
    assert counts == splits.link_split(str(source), str(train_dir), str(held_dir))  # idempotent
    listed = sorted(os.listdir(train_dir)) + sorted(os.listdir(held_dir))
    assert sorted(listed) == sorted(os.listdir(source)) and sum(counts) == 30
    assert all(splits.is_held_out(n) for n in os.listdir(held_dir))
    assert os.path.realpath(train_dir / os.listdir(train_dir)[0]).startswith(str(source))


def test_table_by_hole_area_bin():
    from common import evaluation

    results = [{"method": "a", "by_hole_area": {"0-10%": {"psnr": 30.0}, "20-30%": {"psnr": 25.5}}},
               {"method": "b", "by_hole_area": {"20-30%": {"psnr": 21.25}}}]
    assert evaluation.markdown_bins_table(results).splitlines() == [
        "| method | 0-10% | 20-30% |", "|---|---|---|",
        "| a | 30.00 | 25.50 |", "| b | n/a | 21.25 |"]
    with pytest.raises(ValueError):
        evaluation.markdown_bins_table([{"method": "a", "by_hole_area": {}}])


def _write_faces(folder, count):
    """Smooth synthetic 'faces', 200x200 like the UTKFace crops."""
    folder.mkdir()
    yy, xx = np.mgrid[0:200, 0:200]
    for i in range(count):
        image = np.stack([(yy + 3 * i) % 256, (xx * 2 + i) % 256, 0 * yy + 90 + i], -1)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"face{i:03d}.jpg")


def _write_masks(folder):
    folder.mkdir()
    for i, side in enumerate((40, 80, 120)):
        mask = np.zeros((256, 256), np.uint8)
        mask[20:20 + side, 30:30 + side] = 255
        Image.fromarray(mask).save(folder / f"{i:05d}.png")


def test_study_command_on_a_tiny_budget(tmp_path):
    faces, masks = tmp_path / "faces", tmp_path / "masks"
    _write_faces(faces, 40)
    _write_masks(masks)
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:faces_study:start -->\nold\n"
                      "<!-- results:faces_study:end -->\n")
    root = tmp_path / "study"
    command = [sys.executable, SCRIPT, "--smoke", f"--faces={faces}", f"--masks={masks}",
               f"--root={root}", f"--figures={tmp_path / 'figures'}", "--eval_limit=2",
               "--runs=context_encoder,glcic", f"--readme={readme}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # --noevaluate trains one run and reports nothing; the full call then skips that run.
    # --mixed_precision reaches the run's train.py.
    train_only = [c for c in command if not c.startswith(("--runs", "--readme"))]
    # The time of an earlier glcic run whose work directory was removed is not counted.
    root.mkdir()
    (root / "timings.json").write_text(json.dumps({"glcic": {
        "seconds": 9999.0, "sessions": 2, "load_at_start": [1.0, 1.0], "steps": 290}}))
    first = subprocess.run(train_only + ["--runs=glcic", "--noevaluate",
                                         "--mixed_precision=bfloat16"], capture_output=True,
                           text=True, timeout=600, cwd=helpers.REPO, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert not (root / "faces_study.md").exists() and "old" in readme.read_text()
    assert "--mixed_precision=bfloat16" in (root / "glcic" / "flags.cfg").read_text().split()
    glcic_time = json.loads((root / "timings.json").read_text())["glcic"]
    assert glcic_time["steps"] == 2 and glcic_time["sessions"] == 1
    assert 0 < glcic_time["seconds"] < 9999
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            cwd=helpers.REPO, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    text = readme.read_text()
    assert "old" not in text
    for table in ("**center**", "**boxes**", "**irregular**", "PSNR (dB) by hole area"):
        assert table in text
    # Every method on the centre masks; the centre-only Context Encoders not on the others.
    center = text.split("**center**")[1].split("**boxes**")[0]
    for method in ("telea", "ns", "biharmonic", "context_encoder", "glcic",
                   "glcic_postprocessed"):
        assert f"| {method} | 2 |" in center
    boxes = text.split("**boxes**")[1]
    assert "| context_encoder |" not in boxes and "| glcic | 2 |" in boxes
    timings = json.loads((root / "timings.json").read_text())
    assert set(timings) == {"context_encoder", "glcic"}
    assert all(t["steps"] == 2 and t["seconds"] > 0 for t in timings.values())
    assert (tmp_path / "figures" / "faces_study.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "faces_study_curves.png").exists()
    assert (tmp_path / "figures" / "faces_study_bins.png").stat().st_size > 10_000
    assert (root / "faces_study.md").read_text().strip() in text
    # The centre-region papers' own hole, then the whole square.
    def metrics(mask_set, method):
        return root / "eval" / mask_set / method / "metrics.json"
    assert json.loads(metrics("center", "telea").read_text())["masks"] == "center-overlap"
    assert json.loads(metrics("center_full", "telea").read_text())["masks"] == "center"
    # A second call skips the finished runs and reuses the evaluations, except one
    # whose recorded masks are not the set's.
    stale = json.loads(metrics("center", "ns").read_text())
    metrics("center", "ns").write_text(json.dumps({**stale, "masks": "center"}))
    again = subprocess.run(command, capture_output=True, text=True, timeout=600,
                           cwd=helpers.REPO, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished (2 steps), skipped" in again.stderr
    assert re.findall(r"Evaluating (\S+) with (\S+) masks", again.stderr) == [
        ("ns", "center-overlap")]
    assert json.loads((root / "timings.json").read_text()) == timings
    # Another --name: a study of some runs in a block of its own; the main block stays.
    readme.write_text(text + "<!-- results:glcic_only:start -->\n<!-- results:glcic_only:end -->\n")
    named = [c for c in command if not c.startswith("--runs")] + [
        "--runs=glcic", "--name=glcic_only", "--notrain"]
    other = subprocess.run(named, capture_output=True, text=True, timeout=600,
                           cwd=helpers.REPO, env=env)
    assert other.returncode == 0, other.stderr[-3000:]
    assert "Evaluating" not in other.stderr  # every evaluation reused
    block = readme.read_text().split("<!-- results:glcic_only:start -->")[1]
    assert "| glcic | 2 |" in block and "| context_encoder |" not in block
    assert readme.read_text().startswith(text)
    assert (tmp_path / "figures" / "glcic_only_bins.png").exists()
    assert (root / "glcic_only.md").exists()
    # A README without the block is refused before any work.
    missing = subprocess.run(named[:-1] + ["--name=absent"], capture_output=True, text=True,
                             timeout=300, cwd=helpers.REPO, env=env)
    assert missing.returncode != 0
    assert "--readme has no <!-- results:absent:start -->" in missing.stderr
    assert "Evaluating" not in missing.stderr and "Split" not in missing.stderr


def test_no_training_run_of_the_study_reads_the_evaluation_masks(tmp_path):
    """The irregular runs train on generated strokes; the NVIDIA masks (--masks) are
    for evaluation only. Every run's full flags, its config files expanded, are checked."""
    from common import cli

    evaluation_masks = str(tmp_path / "nvidia_irregular")
    # The study's own train commands, from a process of its own (its flags are global).
    lister = (
        "import json, sys\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "import faces_study\n"
        f"faces_study.FLAGS(['x', '--masks={evaluation_masks}', '--vgg_weights=none'])\n"
        "print(json.dumps([[name, paper, smoke, faces_study.train_command(\n"
        "    paper, config, 'w/' + name, 'train', 'heldout', smoke)]\n"
        "    for name, paper, config, _ in faces_study.RUNS for smoke in (False, True)]))\n")
    listed = subprocess.run([sys.executable, "-c", lister], capture_output=True, text=True,
                            timeout=300, cwd=helpers.REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert listed.returncode == 0, listed.stderr[-3000:]
    runs = json.loads(listed.stdout.strip().splitlines()[-1])
    # The runs are the registered papers' cpu_faces*.cfg: their own configs first.
    names = list(dict.fromkeys(name for name, *_ in runs))
    configs = {paper + config[len("cpu_faces"):-len(".cfg")]
               for paper in papers.PAPERS
               for config in os.listdir(os.path.join(papers.paper_folder(paper), "configs"))
               if re.fullmatch(r"cpu_faces(_\w+)?\.cfg", config)}
    assert names[:len(papers.PAPERS)] == list(papers.PAPERS) and set(names) == configs
    assert {"context_encoder_l2", "dmfn_irregular", "glcic_irregular",
            "dmfn_irregular_uniform"} <= configs
    for name, paper, smoke, command in runs:
        expanded = cli.expand_flagfiles(command[1:])
        assert not any(evaluation_masks in arg for arg in expanded), (name, smoke)
        values = helpers.paper_flags(paper, *expanded[1:])
        assert not getattr(values, "mask_dir", ""), (name, smoke)
        if "_irregular" in name:
            assert values.mask_type in ("strokes", "matched_strokes"), (name, smoke)
        if name == "context_encoder_l2":  # a variant keeps its change in a smoke run
            assert values.adversarial is False, smoke
        if name == "dmfn_irregular_batchnorm":  # and a variant of a variant, both changes
            assert values.generator_norm == "batch" and values.pixel_weight == 100, smoke
