#!/usr/bin/env python3
"""The two set-up-and-run commands, for a fresh machine with only Python 3.10+.

  python3 run.py demo   # trains the Context Encoders demo on the bundled photos
  python3 run.py test   # runs the test suite (pytest -n 2)

Each first makes sure the virtual environment `.venv` holds the suite: it creates
`.venv` and installs the suite into it (editable, with the test and notebook
extras: `pip install -e ".[dev]"`) when `.venv` is missing, or when setup.py has
changed since the last install; otherwise it goes straight to the job, which runs
with `.venv`'s Python. Arguments after the job's name are passed on: to train.py
for `demo` (e.g. `--max_steps=20`), to pytest for `test` (e.g. `tests/test_masks.py`).

Every other command in the READMEs runs in that environment: `. .venv/bin/activate`
first. Only the standard library is used here, since nothing else is installed yet.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv

REPO = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(REPO, ".venv")
# What `pip install` was last run for, so an unchanged setup.py installs nothing.
STAMP = "installed-from-setup.py.sha256"

JOBS = {
    "demo": ["reproductions/context_encoder/train.py",
             "--flagfile=reproductions/context_encoder/configs/demo.cfg",
             "--workdir=runs/ce_demo"],
    "test": ["-m", "pytest", "-n", "2"],
}
USAGE = f"usage: python3 run.py {{{'|'.join(JOBS)}}} [arguments for the job]"
# Printed when the demo has trained: what it made, and where to go next.
DEMO_DONE = """
The demo trained Context Encoders for a few minutes on seven photos, in {workdir}:
  samples/step_*.png   image grids (masked input | raw output | composite | ground truth)
  checkpoints/         the weights (rerunning the command resumes, or says it is done)
  metrics.jsonl        the losses at every logged step
That is enough to learn coarse colour in the centre hole, not faces or scenes. What
real training shows is the CPU-scale study on faces (benchmarks/README.md), which
trains every paper on 4,493 faces from ../shared/data:
  python benchmarks/faces_study.py --readme=benchmarks/README.md

Next, in the environment (. .venv/bin/activate):
  tensorboard --logdir {workdir}
  inpaint-eval --method=context_encoder:{workdir} --images=PHOTOS --masks=center-overlap \\
      --image_size=128 --output=runs/ce_demo_eval
  inpaint --method=telea --image=PHOTO --mask=MASK --output=completed.png
  inpaint-app --runs_dir=runs      (every method side by side in the browser)
"""


def venv_python(env_dir: str = VENV) -> str:
    """The Python interpreter inside a virtual environment."""
    if os.name == "nt":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


def setup_digest(repo: str = REPO) -> str:
    """SHA-256 of setup.py, which holds every dependency of the suite."""
    with open(os.path.join(repo, "setup.py"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def needs_install(env_dir: str = VENV, repo: str = REPO) -> bool:
    """Whether `env_dir` lacks a Python, or was installed from another setup.py."""
    stamp = os.path.join(env_dir, STAMP)
    if not os.path.exists(venv_python(env_dir)) or not os.path.exists(stamp):
        return True
    with open(stamp) as f:
        return f.read().strip() != setup_digest(repo)


def install(env_dir: str = VENV, repo: str = REPO) -> None:
    """Creates `env_dir` if needed and installs the suite into it, then stamps it."""
    if not os.path.exists(venv_python(env_dir)):
        print(f"Creating the virtual environment {env_dir} ...", flush=True)
        try:
            venv.create(env_dir, with_pip=True)
        except (subprocess.CalledProcessError, OSError) as error:
            sys.exit(f"error: could not create {env_dir} ({error}). On Debian or Ubuntu, "
                     "install the python3-venv package first.")
    print(f'Installing the suite into {env_dir} (pip install -e ".[dev]"; a few minutes the '
          "first time) ...", flush=True)
    python = venv_python(env_dir)
    command = [python, "-m", "pip", "install", "-e", ".[dev]"]
    if subprocess.call(command, cwd=repo) != 0:
        sys.exit(f"error: {' '.join(command)} failed (see its output above); fix that and "
                 "rerun: the install is retried until it succeeds.")
    with open(os.path.join(env_dir, STAMP), "w") as f:
        f.write(setup_digest(repo) + "\n")
    subprocess.call([python, "-c", "import sys, tensorflow, keras; print('Installed: Python', "
                     "sys.version.split()[0], '| TensorFlow', tensorflow.__version__, "
                     "'| Keras', keras.__version__)"], cwd=repo)


def browser_notice(which=shutil.which) -> str:
    """A line saying the browser test will be skipped, when Chromium or its driver is
    missing (system packages: installed by `.ci/run`, not by this script); "" if not."""
    missing = [name for name in ("chromium", "chromedriver") if not which(name)]
    if not missing:
        return ""
    return (f"Note: {' and '.join(missing)} not found, so the browser test of inpaint-app "
            "will be skipped; to run it: sudo apt-get install chromium chromium-driver")


def job_command(job: str, extra: list[str], python: str) -> list[str]:
    """The command line of a job, run with `python`, with the user's extra arguments."""
    return [python, *JOBS[job], *extra]


def main(argv: list[str], runner=subprocess.call, env_dir: str = VENV) -> int:
    if len(argv) < 2 or argv[1] not in JOBS:
        print(USAGE, file=sys.stderr)
        return 2
    if needs_install(env_dir):
        install(env_dir)
    command = job_command(argv[1], argv[2:], venv_python(env_dir))
    if argv[1] == "test":
        notice = browser_notice()
        if notice:
            print(notice, flush=True)
    print("Running:", " ".join(command[1:]), flush=True)
    code = runner(command, cwd=REPO)
    if argv[1] == "demo" and code == 0:
        workdirs = [a.split("=", 1)[1] for a in command if a.startswith("--workdir=")]
        print(DEMO_DONE.format(workdir=workdirs[-1]))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
