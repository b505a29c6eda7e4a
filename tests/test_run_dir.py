"""A run's history survives damaged files, and one process trains in a work directory."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from common import experiment
from common import run_dir
from common.errors import UserError
from helpers import REPO, configs_dir, run_cli, train_records

CE_SMOKE = f"--flagfile={configs_dir('context_encoder')}/smoke.cfg"


def write_checkpoints(directory, steps):
    """Real checkpoints of one variable whose value is the step, via a CheckpointManager."""
    value = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(value=value)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=10)
    for step in steps:
        value.assign(float(step))
        manager.save(checkpoint_number=step)
    return checkpoint, value


def data_file(directory, step):
    return directory / f"ckpt-{step}.data-00000-of-00001"


def test_a_garbage_or_empty_index_is_rebuilt_from_the_files_on_disk(tmp_path):
    write_checkpoints(tmp_path, [2, 4, 6])
    for damage in ("garbage {{", ""):
        (tmp_path / "checkpoint").write_text(damage)
        assert run_dir.newest_readable(str(tmp_path), repair=True) == str(tmp_path / "ckpt-6")
        state = tf.train.get_checkpoint_state(str(tmp_path))
        assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == \
            ["ckpt-2", "ckpt-4", "ckpt-6"]


def test_a_truncated_newest_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path):
    checkpoint, value = write_checkpoints(tmp_path, [2, 4])
    size = data_file(tmp_path, 4).stat().st_size
    with open(data_file(tmp_path, 4), "r+b") as f:
        f.truncate(size - 2)
    assert "Read less bytes" in run_dir.checkpoint_problem(str(tmp_path / "ckpt-4"))
    # Inference touches nothing; training moves the damaged files aside.
    assert run_dir.newest_readable(str(tmp_path), repair=False) == str(tmp_path / "ckpt-2")
    assert data_file(tmp_path, 4).exists()
    assert run_dir.newest_readable(str(tmp_path), repair=True) == str(tmp_path / "ckpt-2")
    assert sorted(os.listdir(tmp_path / "damaged")) == [
        "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    checkpoint.restore(str(tmp_path / "ckpt-2"))
    assert float(value.numpy()) == 2.0


def test_a_missing_index_file_falls_back_and_nothing_readable_gives_none(tmp_path):
    write_checkpoints(tmp_path, [2, 4])
    os.remove(tmp_path / "ckpt-4.index")
    assert run_dir.newest_readable(str(tmp_path), repair=True) == str(tmp_path / "ckpt-2")
    os.remove(tmp_path / "ckpt-2.index")
    assert run_dir.newest_readable(str(tmp_path), repair=True) is None
    assert not (tmp_path / "checkpoint").exists()
    assert run_dir.newest_readable(str(tmp_path / "missing"), repair=False) is None


def test_latest_step_reads_the_files_not_the_index(tmp_path):
    write_checkpoints(tmp_path / "checkpoints", [3, 9])
    (tmp_path / "checkpoints" / "checkpoint").write_text("garbage")
    assert run_dir.latest_step(str(tmp_path)) == 9
    os.remove(data_file(tmp_path / "checkpoints", 9))
    assert run_dir.latest_step(str(tmp_path)) == 3


def test_a_whole_checkpoint_the_index_does_not_name_yet_is_the_one_resumed(tmp_path):
    """A kill after a save's data files but before its index update: the index lists
    steps 2 and 4, the disk also holds a whole step 6, which is newer and is used."""
    write_checkpoints(tmp_path, [2, 4, 6])
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), "ckpt-4",
                                               all_model_checkpoint_paths=["ckpt-2", "ckpt-4"])
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    assert run_dir.newest_readable(str(tmp_path), repair=False) == str(tmp_path / "ckpt-6")
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")  # untouched
    assert run_dir.newest_readable(str(tmp_path), repair=True) == str(tmp_path / "ckpt-6")
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-6")


def test_a_torn_metrics_line_is_dropped_and_appends_start_on_a_new_line(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    with open(path, "w") as f:
        f.write('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n{"step": 3, "lo')
    assert [r["step"] for r in run_dir.read_metrics(path)] == [1, 2]
    run_dir.append_metrics(path, {"step": 4, "loss": 0.25})
    assert [r["step"] for r in run_dir.read_metrics(path)] == [1, 2, 4]
    run_dir.truncate_metrics(path, 2)
    with open(path) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2]


HOLD_LOCK = """
import sys, time
from common import run_dir
with run_dir.locked(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_the_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_dir.WorkdirBusyError, match=f"process {holder.pid} on "):
            with run_dir.locked(str(tmp_path)):
                pass
        # train.py says so in one line and leaves the run's files alone.
        result = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}")
        assert result.returncode == 1
        assert f"--workdir {tmp_path} is in use: process {holder.pid}" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "flags.cfg").exists() and not (tmp_path / "config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # no handler runs: the kernel drops the lock
        holder.wait()
    with run_dir.locked(str(tmp_path)):
        pass


def test_resume_survives_a_damaged_index_and_a_truncated_newest_checkpoint(tmp_path):
    first = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}")
    assert first.returncode == 0, first.stderr[-3000:]
    (tmp_path / "checkpoints" / "checkpoint").write_text("")
    second = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}", "--max_steps=6")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "rebuilt it from the files on disk" in second.stderr
    assert "at step 4 " in second.stderr  # not from step 0
    assert [r["step"] for r in train_records(tmp_path)] == [2, 4, 6]

    latest = data_file(tmp_path / "checkpoints", 6)
    with open(latest, "r+b") as f:
        f.truncate(latest.stat().st_size // 2)
    third = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}", "--max_steps=8",
                    "--lr_g=0.0001")
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"Checkpoint {tmp_path / 'checkpoints' / 'ckpt-6'} is damaged" in third.stderr
    assert "at step 4 " in third.stderr
    assert (tmp_path / "checkpoints" / "damaged" / latest.name).exists()
    assert [r["step"] for r in train_records(tmp_path)] == [2, 4, 6, 8]
    # The changed learning rate is used, logged and recorded (a checkpoint stores the
    # optimizer's learning rate, which would otherwise silently win).
    assert "--lr_g: 0.002 -> 0.0001" in third.stderr
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-8"))
    rates = {name: reader.get_tensor(name) for name, _ in
             tf.train.list_variables(str(tmp_path / "checkpoints" / "ckpt-8"))
             if "g_optimizer" in name and "learning_rate" in name}
    assert rates and all(abs(v - 1e-4) < 1e-10 for v in rates.values())
    assert "--lr_g=0.0001" in (tmp_path / "flags.cfg").read_text()


def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path):
    assert run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}",
                   "--max_steps=2").returncode == 0
    before = {name: (tmp_path / name).read_text() for name in ("flags.cfg", "config.json")}
    for change, named in (("--bottleneck=48", "--bottleneck: 32 -> 48"),
                          ("--batch_size=2", "--batch_size: 4 -> 2")):
        result = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}", "--max_steps=4",
                         change)
        assert result.returncode == 1
        assert named in result.stderr and "Traceback" not in result.stderr
        assert {name: (tmp_path / name).read_text() for name in before} == before
    # The refusal's advice works as written.
    again = run_cli("context_encoder", f"--flagfile={tmp_path / 'flags.cfg'}", "--max_steps=4")
    assert again.returncode == 0, again.stderr[-3000:]
    assert run_dir.latest_step(str(tmp_path)) == 4
    other_paper = run_cli("glcic", f"--flagfile={configs_dir('glcic')}/smoke.cfg",
                          f"--workdir={tmp_path}")
    assert other_paper.returncode == 1
    assert "holds a context_encoder run, not glcic" in other_paper.stderr


def test_resume_changes_accepts_optimizer_settings_and_lengths(tmp_path):
    from reproductions.context_encoder import train_lib
    write_checkpoints(tmp_path / "checkpoints", [2])
    config = train_lib.Config(ngf=8, nef=8, ndf=8, bottleneck=32)
    experiment.write_paper_config(str(tmp_path), "context_encoder", config)
    (tmp_path / "flags.cfg").write_text("--batch_size=4\n--num_steps=4\n--nojit_compile\n")
    changes = experiment.resume_changes(
        str(tmp_path), "context_encoder", train_lib.Config(ngf=8, nef=8, ndf=8, bottleneck=32,
                                                           lr_d=1e-5),
        ("--batch_size=4", "--num_steps=10", "--jit_compile=true"))
    assert changes == ["--lr_d: 0.0002 -> 1e-05", "--jit_compile: false -> true",
                       "--num_steps: 4 -> 10"]


def test_a_finished_run_is_left_untouched_and_unreadable_checkpoints_never_restart_it(
        tmp_path):
    workdir = tmp_path / "run"
    assert run_cli("context_encoder", CE_SMOKE, f"--workdir={workdir}").returncode == 0
    files = ("metrics.jsonl", "flags.cfg", "config.json")

    def state():
        return {name: ((workdir / name).read_bytes(), (workdir / name).stat().st_mtime_ns)
                for name in files}

    before = state()
    again = run_cli("context_encoder", CE_SMOKE, f"--workdir={workdir}")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert state() == before

    for step in (2, 4):
        path = data_file(workdir / "checkpoints", step)
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    for attempt in range(2):  # the second time, everything is already in damaged/
        result = run_cli("context_encoder", CE_SMOKE, f"--workdir={workdir}", "--max_steps=6")
        assert result.returncode == 1, result.stderr[-2000:]
        assert "has no readable checkpoint" in result.stderr
        assert f"{workdir / 'checkpoints' / 'damaged'}" in result.stderr
        assert "Traceback" not in result.stderr
        assert state() == before
    assert len(os.listdir(workdir / "checkpoints" / "damaged")) == 4


def test_a_workdir_with_edge_spaces_survives_its_flags_cfg(tmp_path):
    from common import flagfiles

    workdir = f"{tmp_path}/run "
    assert run_cli("context_encoder", CE_SMOKE, f"--workdir={workdir}",
                   "--max_steps=2").returncode == 0
    flags_cfg = os.path.join(workdir, "flags.cfg")
    assert f'--workdir="{workdir}"' in open(flags_cfg).read().splitlines()
    assert flagfiles.read_flagfile(flags_cfg)["workdir"] == workdir
    relaunched = run_cli("context_encoder", f"--flagfile={flags_cfg}", "--max_steps=4")
    assert relaunched.returncode == 0, relaunched.stderr[-2000:]
    assert "at step 2 " in relaunched.stderr
    assert not os.path.exists(f"{tmp_path}/run")  # no second run beside it
    assert [r["step"] for r in train_records(workdir)] == [2, 4]


def test_a_flagfile_that_is_not_text_is_named_in_one_line(tmp_path):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_bytes(b"--max_steps=2\n\xff\xfe\x00binary")
    result = run_cli("context_encoder", f"--flagfile={flagfile}", f"--workdir={tmp_path}/w")
    assert result.returncode == 1
    assert f"--flagfile={flagfile} is not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr


def test_atomic_writes_replace_the_whole_file_and_leave_no_temporary(tmp_path):
    from common import atomic

    path = str(tmp_path / "state.json")
    atomic.write_json(path, {"step": 1, "loss": float("nan")})
    atomic.write_json(path, {"step": 2})
    with open(path) as f:
        assert f.read() == '{\n  "step": 2\n}\n'
    atomic.write_text(path, "é\n")
    with open(path, encoding="utf-8") as f:
        assert f.read() == "é\n"
    assert os.listdir(tmp_path) == ["state.json"]


def test_an_atomic_write_that_fails_leaves_the_old_file(tmp_path, monkeypatch):
    from common import atomic

    path = str(tmp_path / "state.json")
    atomic.write_json(path, {"step": 1})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"step": object()})  # not JSON: fails before any write
    def disk_full(descriptor):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)  # the new content written, not yet synced
    with pytest.raises(OSError, match="No space"):
        atomic.write_json(path, {"step": 2})
    with open(path) as f:
        assert json.load(f) == {"step": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_milestones_outlive_keep_checkpoints_and_name_a_step_to_score(tmp_path):
    """--milestone_every keeps every multiple's checkpoint in milestones/ although
    --keep_checkpoints=1 deletes it from checkpoints/; PAPER:WORKDIR@STEP restores it."""
    from reproductions import inpainters

    result = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path}", "--max_steps=6",
                     "--checkpoint_every=2", "--keep_checkpoints=1", "--milestone_every=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_dir.complete_steps(str(tmp_path / "checkpoints")) == [6]
    assert run_dir.complete_steps(str(tmp_path / "milestones")) == [4]
    milestone = str(tmp_path / "milestones" / "ckpt-4")
    assert run_dir.checkpoint_problem(milestone) is None
    assert run_dir.checkpoint_at_step(str(tmp_path), 4) == milestone

    reader = tf.train.load_checkpoint(milestone)
    saved = [reader.get_tensor(name) for name, _ in tf.train.list_variables(milestone)]
    at_4 = inpainters.load_task(f"{tmp_path}@4")[1]
    at_6 = inpainters.load_task(str(tmp_path))[1]
    first_4 = next(w for w in at_4.generator.weights if "kernel" in w.path).numpy()
    first_6 = next(w for w in at_6.generator.weights if "kernel" in w.path).numpy()
    assert not np.array_equal(first_4, first_6)  # step 6 trained on
    assert any(np.array_equal(value, first_4) for value in saved)
    assert not any(np.array_equal(value, first_6) for value in saved)

    with pytest.raises(UserError, match=r"has no checkpoint of step 2; it keeps steps \[4, 6\]"):
        inpainters.load_task(f"{tmp_path}@2")
    with pytest.raises(UserError, match="ends in @latest; expected WORKDIR@STEP"):
        inpainters.load_task(f"{tmp_path}@latest")
    refused = run_cli("context_encoder", CE_SMOKE, f"--workdir={tmp_path / 'other'}",
                      "--checkpoint_every=2", "--milestone_every=3")
    assert refused.returncode == 1
    assert "--milestone_every must be 0 (none) or a multiple of --checkpoint_every (2)" in \
        refused.stderr
