"""Each hyperparameter is defined once: a paper's Config field is its flag and its default."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import subprocess
import sys
from typing import Sequence

import pytest
from absl import flags

from common import cli
from common import config_flags
from common.config_flags import option
from common.errors import UserError
import helpers
from helpers import REPO
from reproductions import papers

PAPERS = papers.PAPERS  # every registered paper (tests/test_registry.py adds a tiny one)


@dataclasses.dataclass(frozen=True)
class Example:
    size: int = option(8, "A side.")
    rate: float = option(0.5, "A rate.")
    on: bool = option(True, "A switch.")
    kind: str = option("a", "A choice.", choices=("a", "b"))
    name: str = option("", "Free text.")
    weights: str | None = option("imagenet", "A file, or none.", none="none")
    taps: Sequence[str] = option(("x", "y"), "Names.")
    scales: Sequence[float] = option((1.0, 2.5), "Numbers.")
    mean: Sequence[float] | None = option(None, "Three numbers, or empty.")
    fixed: int = 3  # not a flag


def parsed(*argv: str) -> flags.FlagValues:
    values = flags.FlagValues()
    config_flags.define_flags(Example, values)
    values(["prog", *argv])
    return values


def test_each_option_field_becomes_a_flag_of_its_kind_with_its_default():
    values = parsed()
    kinds = {name: type(values[name]).__name__ for name in values}
    assert "fixed" not in kinds
    assert kinds["on"] == "BooleanFlag" and kinds["kind"] == "EnumFlag"
    assert values["taps"].default == ["x", "y"] and values["scales"].default == ["1", "2.5"]
    assert values["mean"].default == [] and values["weights"].default == "imagenet"
    assert values["size"].help == "A side."
    assert config_flags.from_flags(Example, values) == Example()


def test_flag_values_are_converted_to_the_field_types():
    values = parsed("--size=16", "--rate=0.25", "--noon", "--kind=b", "--weights=none",
                    "--taps=p,q,r", "--scales=3,4", "--mean=0.1,0.2,0.3")
    assert config_flags.from_flags(Example, values) == Example(
        size=16, rate=0.25, on=False, kind="b", weights=None, taps=("p", "q", "r"),
        scales=(3.0, 4.0), mean=(0.1, 0.2, 0.3))


def test_a_list_that_is_not_numbers_is_a_user_error_naming_the_flag():
    with pytest.raises(UserError, match=r"--scales must be a comma-separated list of numbers, "
                                        r"got '1,x'"):
        config_flags.from_flags(Example, parsed("--scales=1,x"))


def test_an_enum_option_refuses_other_values():
    with pytest.raises(flags.IllegalFlagValueError):
        parsed("--kind=c")


def paper_values(paper: str) -> tuple[flags.FlagValues, type]:
    """The flags of PAPER's train.py, unparsed, and its Config."""
    return helpers.paper_flags(paper), papers.get(paper).config


@pytest.mark.parametrize("paper", PAPERS)
def test_every_paper_flag_default_is_its_config_default(paper):
    values, config_cls = paper_values(paper)
    values(["prog"])
    assert config_flags.from_flags(config_cls, values) == config_cls()
    for name, value in config_cls.RUN_DEFAULTS.items():
        assert values[name].default == value
    fields = {f.name for f in config_flags.flag_fields(config_cls)}
    assert fields and fields <= set(values)


def flag_lines(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.startswith("--")]


def is_default(values: flags.FlagValues, line: str) -> bool:
    name, equals, text = line[2:].partition("=")
    if not equals:  # --name or --noname
        flag, value = (name, True) if name in values else (name[2:], False)
        return values[flag].default == value
    flag = values[name]
    value = text.lower() == "true" if isinstance(flag, flags.BooleanFlag) else \
        flag.parser.parse(text)
    return flag.default == value


@pytest.mark.parametrize("paper", PAPERS)
def test_configs_state_only_what_differs_from_the_defaults(paper):
    """A line restating a default would be a second copy of it, which a change of
    the default would silently leave behind."""
    values, _ = paper_values(paper)
    paths = sorted(glob.glob(os.path.join(papers.get(paper).configs_dir(), "*.cfg")))
    assert paths
    restated = [(os.path.basename(path), line) for path in paths for line in flag_lines(path)
                if not line.startswith("--flagfile=") and is_default(values, line)]
    assert not restated


@pytest.mark.parametrize("paper", PAPERS)
def test_every_config_resolves_and_included_files_exist(paper, monkeypatch):
    monkeypatch.chdir(REPO)  # includes are written from the repository root
    for path in glob.glob(os.path.join(papers.get(paper).configs_dir(), "*.cfg")):
        for line in flag_lines(path):
            if line.startswith("--flagfile="):
                assert os.path.exists(line.split("=", 1)[1]), (path, line)
        values, config_cls = paper_values(paper)
        values(["prog", f"--flagfile={path}"])
        irregular = values["mask_type"].value == "irregular" if "mask_type" in values else False
        if not irregular:  # an irregular-mask config needs --mask_dir, given on the command line
            assert isinstance(config_flags.from_flags(config_cls, values), config_cls)


def test_ablation_configs_are_their_base_plus_a_few_lines():
    configs = os.path.join(REPO, "reproductions", "structural_inpainting", "configs")
    for name in ("ablation_l2", "ablation_l2_adv", "ablation_l2_feat", "ablation_l2_feat_adv"):
        lines = flag_lines(os.path.join(configs, f"{name}.cfg"))
        assert lines[0] == "--flagfile=reproductions/structural_inpainting/configs/paper.cfg"
        assert len(lines) <= 3, (name, lines)


def write(path, *lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_flagfiles_expand_in_place_with_their_includes_so_later_flags_win(tmp_path):
    base = write(tmp_path / "base.cfg", "# a comment", "", "--a=1", "// another", "--b=1")
    variant = write(tmp_path / "variant.cfg", f"--flagfile={base}", "--b=2")
    assert cli.expand_flagfiles(["prog", "--x=0", f"--flagfile={variant}", "--a=3"]) \
        == ["prog", "--x=0", "--a=1", "--b=1", "--b=2", "--a=3"]
    assert cli.expand_flagfiles(["prog", "--flagfile", base]) == ["prog", "--a=1", "--b=1"]
    # After "--" nothing is a flag.
    assert cli.expand_flagfiles(["prog", "--", f"--flagfile={base}"]) \
        == ["prog", "--", f"--flagfile={base}"]


def test_an_include_written_from_the_repository_root_is_found_from_any_directory(
        tmp_path, monkeypatch):
    config = "reproductions/structural_inpainting/configs/cpu_faces_no_feat.cfg"
    from_root = cli.expand_flagfiles(["prog", f"--flagfile={config}"])
    monkeypatch.chdir(tmp_path)
    assert cli.expand_flagfiles(["prog", f"--flagfile={config}"]) == from_root
    assert any(line.startswith("--structural_steps=") for line in from_root)  # from the base


def test_a_missing_or_circular_flagfile_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="nowhere.cfg: no such file"):
        cli.expand_flagfiles(["prog", "--flagfile=nowhere.cfg"])
    loop = tmp_path / "loop.cfg"
    write(loop, f"--flagfile={loop}")
    with pytest.raises(UserError, match="includes itself"):
        cli.expand_flagfiles(["prog", f"--flagfile={loop}"])


def test_train_py_runs_from_another_directory_with_an_included_config(tmp_path):
    script = os.path.join(REPO, "reproductions", "structural_inpainting", "train.py")
    result = subprocess.run(
        [sys.executable, script, "--flagfile=reproductions/structural_inpainting/configs/"
         "ablation_l2.cfg", "--dry_run"], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                           "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["generator_params"] > 0 and counts["discriminator_params"] == 0  # L2 only
