"""Every command the READMEs show still works, so the documentation cannot drift.

The commands are read from the ```bash blocks of README.md, the pages of docs/,
benchmarks/README.md and the paper READMEs:

  * a train.py demo (the bundled `sample` photos) runs as written, shortened to two
    steps and pointed at a temporary work directory;
  * a train.py command with `--dry_run` runs as written; any other train.py command
    (its data are not on this machine) runs with `--dry_run` added, which reads the
    flagfiles and validates every flag value;
  * any other tool (`inpaint`, `inpaint-eval`, `export.py`, `convert`, the benchmarks)
    must exist and define every flag the command gives, as its `--help` lists them;
  * the two set-up commands, `python3 run.py demo` and `python3 run.py test`, are
    checked by tests/test_run_script.py; CI runs the test one (`.ci/run`).
"""

import functools
import glob
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import REPO

READMES = ["README.md", *sorted(glob.glob("docs/*.md", root_dir=REPO)), "benchmarks/README.md",
           *sorted(glob.glob("reproductions/*/README.md", root_dir=REPO))]
# Checked by tests/test_run_script.py and run by CI, or a notebook (tests/test_notebooks.py
# runs them).
NOT_HERE = ("python3 run.py", "pytest", "jupyter")
TOOLS = {"inpaint": ["-m", "reproductions.inpaint"], "inpaint-eval": ["-m", "reproductions.evaluate"],
         "inpaint-app": ["-m", "reproductions.app.server"]}


def readme_commands(path: str) -> list[str]:
    """The commands of the ```bash blocks of `path`: continuation lines joined,
    comments dropped."""
    with open(os.path.join(REPO, path)) as f:
        text = f.read()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        pending = ""
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pending += line.rstrip().removesuffix("\\") + " "
            if not line.rstrip().endswith("\\"):
                commands.append(" ".join(pending.split()))
                pending = ""
    return commands


def all_commands() -> list[tuple[str, str]]:
    """(README, command) pairs, each command once."""
    seen, pairs = set(), []
    for readme in READMES:
        for command in readme_commands(readme):
            if command not in seen and not command.startswith(NOT_HERE):
                seen.add(command)
                pairs.append((readme, command))
    return pairs


def split_command(command: str) -> tuple[dict, list[str]]:
    """(environment assignments, argv) of a shell command line."""
    words = shlex.split(command, comments=True)
    env = {}
    while words and re.match(r"^[A-Z_]+=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def given_flags(argv: list[str]) -> list[str]:
    return [word[2:].split("=", 1)[0] for word in argv if word.startswith("--")]


def stand_in_masks(folder) -> str:
    """A folder holding one mask image (white = hole), for commands that name the user's."""
    masks = folder / "masks"
    masks.mkdir(exist_ok=True)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 20:44] = 255
    Image.fromarray(mask).save(masks / "mask.png")
    return str(masks)


def run(argv, env=None, timeout=600):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=environment)


def test_the_readmes_show_the_commands_this_test_expects():
    commands = [command for _, command in all_commands()]
    demos = [c for c in commands if "/configs/demo.cfg" in c]
    assert len(demos) == 4, demos  # one demo per paper
    assert any(c.startswith("inpaint ") for c in commands)
    assert any(c.startswith("inpaint-eval ") for c in commands)
    assert len(commands) > 30


@pytest.mark.parametrize("readme, command", all_commands(), ids=lambda value: value[:90])
def test_readme_command(readme, command, tmp_path):
    env, argv = split_command(command)
    assert argv[0] in ("python", *TOOLS), f"{readme}: unexpected program in {command!r}"
    if argv[0] in TOOLS:
        argv = [sys.executable, *TOOLS[argv[0]], *argv[1:]]
    else:
        argv = [sys.executable, *argv[1:]]
    script = argv[1]
    if script.endswith("/train.py"):
        if "/configs/demo.cfg" in command:
            argv = [word for word in argv if not word.startswith("--workdir=")]
            argv += [f"--workdir={tmp_path / 'run'}", "--max_steps=2"]
            result = run(argv, env)
            assert result.returncode == 0, f"{readme}: {command}\n{result.stderr[-3000:]}"
            assert os.path.exists(tmp_path / "run" / "checkpoints" / "checkpoint")
            return
        if "--dry_run" not in argv:
            argv.append("--dry_run")
        # A mask folder is checked when the config is built: stand in for the user's.
        argv = [f"--mask_dir={stand_in_masks(tmp_path)}"
                if word.startswith("--mask_dir=") and not os.path.isdir(word.split("=", 1)[1])
                else word for word in argv]
        env.pop("TF_CONFIG", None)  # the cluster of the example does not exist here
        result = run(argv, env)
        assert result.returncode == 0, f"{readme}: {command}\n{result.stderr[-3000:]}"
        assert '"generator_params"' in result.stdout
        return
    if script != "-m":
        assert os.path.exists(os.path.join(REPO, script)), f"{readme}: no {script}"
    # The tool's --help, with the arguments that choose its flags (a benchmark's --paper).
    chooser = [word for word in argv[2:] if word.startswith("--paper=")]
    prefix = argv[:3] if script == "-m" else argv[:2]
    listing = tool_help(tuple(prefix + chooser))
    for name in given_flags(argv):
        plain = name[2:] if name.startswith("no") else name
        assert (f"--{name}:" in listing or f"--[no]{plain}:" in listing
                or name == "flagfile"), f"{readme}: {command}: {script} has no --{name}"


@functools.lru_cache(maxsize=None)
def tool_help(argv: tuple[str, ...]) -> str:
    """The --help output of a tool, once per tool (and per --paper) in a test process."""
    result = run([*argv, "--help"])
    assert result.returncode == 0, f"{' '.join(argv)} --help:\n{result.stderr[-3000:]}"
    return result.stdout


def test_readme_notebook_commands_name_existing_notebooks():
    """`jupyter execute` commands (tests/test_notebooks.py runs the notebooks): the
    notebook exists, and --output has no dot, which nbclient would take for the
    suffix and so write over the notebook itself."""
    commands = [c for readme in READMES for c in readme_commands(readme)
                if c.startswith("jupyter execute ")]
    assert commands
    for command in commands:
        _, argv = split_command(command)
        notebooks = [word for word in argv[2:] if not word.startswith("--")]
        assert notebooks and all(os.path.exists(os.path.join(REPO, n)) for n in notebooks)
        for word in argv:
            if word.startswith("--output="):
                assert "." not in word.split("=", 1)[1], command
