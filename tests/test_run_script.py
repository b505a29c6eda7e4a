"""run.py, the two set-up-and-run commands of README.md: install only when needed,
then the job, with the user's extra arguments."""

import importlib.util
import os
import re

import pytest

from helpers import REPO

spec = importlib.util.spec_from_file_location("run_script", os.path.join(REPO, "run.py"))
run_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_script)


def fake_env(tmp_path, digest):
    """A stand-in for .venv: a 'python' file and a stamp holding `digest`."""
    env = tmp_path / "venv"
    python = run_script.venv_python(str(env))
    os.makedirs(os.path.dirname(python))
    open(python, "w").close()
    (env / run_script.STAMP).write_text(digest + "\n")
    return str(env)


def test_an_environment_installed_from_this_setup_py_is_not_reinstalled(tmp_path):
    env = fake_env(tmp_path, run_script.setup_digest())
    assert not run_script.needs_install(env)


def test_a_missing_or_outdated_environment_is_installed(tmp_path):
    assert run_script.needs_install(str(tmp_path / "nothing"))
    assert run_script.needs_install(fake_env(tmp_path, "0" * 64))  # setup.py changed since
    os.remove(os.path.join(str(tmp_path / "venv"), run_script.STAMP))  # an install cut short
    assert run_script.needs_install(str(tmp_path / "venv"))


def test_a_job_runs_with_the_environment_python_and_the_extra_arguments(tmp_path):
    env = fake_env(tmp_path, run_script.setup_digest())
    calls = []
    code = run_script.main(["run.py", "demo", "--max_steps=2"],
                           runner=lambda command, cwd: calls.append((command, cwd)) or 0,
                           env_dir=env)
    assert code == 0
    (command, cwd), = calls
    assert cwd == REPO
    assert command[0] == run_script.venv_python(env)
    assert command[1:] == [*run_script.JOBS["demo"], "--max_steps=2"]


def test_an_unknown_job_prints_the_usage(capsys):
    assert run_script.main(["run.py", "train"], runner=None) == 2
    assert "usage: python3 run.py {demo|test}" in capsys.readouterr().err


def test_readme_gives_the_two_commands_and_the_jobs_are_the_documented_ones():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert "python3 run.py demo" in blocks[0] and "python3 run.py test" in blocks[0]
    # The demo job is the Context Encoders README's demo command (which
    # tests/test_readme_commands.py runs); the test job is what CI calls.
    with open(os.path.join(REPO, "reproductions", "context_encoder", "README.md")) as f:
        assert "python " + " ".join(run_script.JOBS["demo"]) in f.read()
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci = f.read()
    assert re.search(r"^python3 run\.py test$", ci, re.M)
    assert run_script.JOBS["test"] == ["-m", "pytest", "-n", "2"]


@pytest.mark.parametrize("job", sorted(run_script.JOBS))
def test_the_jobs_name_files_that_exist(job):
    for word in run_script.JOBS[job]:
        if word.endswith(".py"):
            assert os.path.exists(os.path.join(REPO, word))
        if word.startswith("--flagfile="):
            assert os.path.exists(os.path.join(REPO, word.split("=", 1)[1]))


def test_the_demo_says_what_it_made_and_what_to_run_next(tmp_path, capsys):
    env = fake_env(tmp_path, run_script.setup_digest())
    assert run_script.main(["run.py", "demo", "--workdir=runs/mine"],
                           runner=lambda command, cwd: 0, env_dir=env) == 0
    out = capsys.readouterr().out
    assert "in runs/mine:" in out and "samples/step_*.png" in out
    assert "tensorboard --logdir runs/mine" in out
    assert "inpaint-eval --method=context_encoder:runs/mine" in out
    assert "CPU-scale study on faces" in out
    assert "python benchmarks/faces_study.py --readme=benchmarks/README.md" in out
    assert "inpaint-app --runs_dir=runs" in out
    # A failed or interrupted demo says nothing of the kind.
    assert run_script.main(["run.py", "demo"], runner=lambda command, cwd: 130,
                           env_dir=env) == 130
    assert "tensorboard" not in capsys.readouterr().out


def test_the_test_job_says_when_the_browser_test_will_be_skipped():
    assert run_script.browser_notice(which=lambda name: f"/usr/bin/{name}") == ""
    notice = run_script.browser_notice(which=lambda name: None if name == "chromedriver"
                                       else "/usr/bin/chromium")
    assert notice.startswith("Note: chromedriver not found") and "chromium-driver" in notice
