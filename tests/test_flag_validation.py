"""Every bad flag is refused at start, in one line that names it, before any training."""

import os
import subprocess
import sys

import pytest

from helpers import REPO, configs_dir, run_cli


def smoke(paper):
    return f"--flagfile={configs_dir(paper)}/smoke.cfg"


def assert_refused(result, message, workdir=None):
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count(message) == 1, result.stderr[-2000:]  # printed once, not logged too
    if workdir is not None:  # refused before anything was trained or saved
        assert not os.path.exists(os.path.join(workdir, "checkpoints"))


@pytest.mark.parametrize("paper, flags, message", [
    ("context_encoder", ["--batch_size=-4"], "--batch_size must be a positive integer, got -4"),
    ("structural_inpainting", ["--steps_per_loop=0"],
     "--steps_per_loop must be a positive integer, got 0"),
    ("glcic", ["--image_size=64", "--local_size=128"],
     "--local_size (128) must not exceed --image_size (64)"),
    ("context_encoder", ["--load_size=100"], "--load_size (100) must be at least the crop size"),
    ("context_encoder", ["--train_data=tfds:no_such_dataset_xyz"],
     "--train_data: unknown TensorFlow Datasets name 'no_such_dataset_xyz'"),
    ("context_encoder", ["--train_data=/no/such/folder"], "--train_data"),
    ("dmfn", ["--mask_type=irregular", "--mask_dir=/no/such/masks"],
     "--mask_dir '/no/such/masks' is not a folder"),
    ("context_encoder", ["--seed=-1"], "--seed must be an integer in [0, 4294967295]"),
    ("context_encoder", ["--seed=99999999999"], "--seed must be an integer in [0, 4294967295]"),
    ("context_encoder", ["--eval_data=sample", "--batch_size=8", "--eval_examples=8"],
     "gives 7 image(s), fewer than one batch of 8"),
])
def test_bad_training_flags_are_refused_naming_the_flag(tmp_path, paper, flags, message):
    workdir = str(tmp_path / "run")
    assert_refused(run_cli(paper, smoke(paper), f"--workdir={workdir}", *flags), message, workdir)


def test_folders_without_images_or_masks_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    result = run_cli("dmfn", smoke("dmfn"), f"--workdir={tmp_path / 'a'}", "--mask_type=irregular",
                     f"--mask_dir={empty}")
    assert_refused(result, f"--mask_dir '{empty}' holds no mask image")
    result = run_cli("glcic", smoke("glcic"), f"--workdir={tmp_path / 'b'}",
                     f"--eval_data={empty}")
    assert_refused(result, f"--eval_data: the folder '{empty}' holds no image file")


def test_unknown_enum_values_are_refused_by_the_flag_parser(tmp_path):
    result = run_cli("context_encoder", smoke("context_encoder"), f"--workdir={tmp_path}",
                     "--mixed_precision=float8")
    assert result.returncode == 1
    assert "--mixed_precision" in result.stderr and "float8" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--paper=nope"], "--paper: unknown paper 'nope'"),
    (["--paper=glcic", "--config=nope.cfg"], "--config 'nope.cfg': no such file"),
])
def test_benchmark_refuses_an_unknown_paper_or_config(args, message):
    result = subprocess.run([sys.executable, "benchmarks/train_throughput.py", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert_refused(result, message)


def test_nan_learning_rates_and_flags_that_would_be_ignored_are_refused():
    from reproductions.context_encoder import train_lib as ce_lib
    from reproductions.dmfn import train_lib as dmfn_lib
    from reproductions.structural_inpainting import train_lib as si_lib

    with pytest.raises(ValueError, match="--lr_g must be a positive finite number, got nan"):
        ce_lib.Config(lr_g=float("nan"))
    with pytest.raises(ValueError, match="--lambda_feat must be a finite number >= 0, got nan"):
        si_lib.Config(lambda_feat=float("nan"))
    with pytest.raises(ValueError, match="--mask_dir is read only with --mask_type=irregular"):
        dmfn_lib.Config(mask_dir="/some/masks", vgg_weights=None)


HELP_CASES = [
    (["reproductions/context_encoder/train.py"], ["--workdir", "--train_data", "--variant"]),
    (["-m", "reproductions.inpaint"], ["--method", "--max_megapixels", "--[no]overwrite"]),
    (["-m", "reproductions.evaluate"], ["--method", "--masks", "--image_size"]),
]


@pytest.mark.parametrize("command, expected", HELP_CASES)
def test_help_lists_the_tools_own_flags_and_exits_0(command, expected):
    result = subprocess.run([sys.executable, *command, "--help"], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in expected:
        assert f"  {flag}" in result.stdout, (flag, result.stdout[-2000:])
    # Nothing of TensorFlow's or absl's own flags: those are under --helpfull.
    assert "--verbosity" not in result.stdout and "--xla" not in result.stdout
    assert "--helpfull" in result.stdout



def run_tool(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.mark.parametrize("flags, message", [
    (["--faces=/no/such/faces"], "--faces '/no/such/faces' is not a folder"),
    (["--held_out_percent=0"], "--held_out_percent must be between 0 and 100"),
    (["--held_out_percent=100"], "--held_out_percent must be between 0 and 100"),
])
def test_faces_study_mistakes_are_one_line(tmp_path, flags, message):
    result = run_tool("benchmarks/faces_study.py", f"--root={tmp_path}/study", *flags)
    assert_refused(result, message)
    assert not os.path.exists(tmp_path / "study")


def test_inpaint_with_a_garbled_config_json_is_one_line(tmp_path):
    from PIL import Image
    import numpy as np

    (tmp_path / "config.json").write_text("{not json")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "photo.png")
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = run_tool("-m", "reproductions.inpaint", f"--method=glcic:{tmp_path}",
                      f"--image={tmp_path}/photo.png", f"--mask={tmp_path}/mask.png",
                      f"--output={tmp_path}/out.png")
    assert_refused(result, f"{tmp_path}/config.json is not a run's record")
