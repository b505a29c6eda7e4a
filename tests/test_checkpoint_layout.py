"""Work directories written by earlier versions still resume and load.

A checkpoint names each variable by its path through the task's objects (for
example `generator/layer_with_weights-3/kernel`). Renaming an attribute,
reordering layers or changing what an optimizer tracks silently breaks every
existing run: restoring then fails, or, with `expect_partial`, loads nothing.
`data/checkpoint_layouts.json` records the variables of each paper's smoke-config
checkpoint (names and shapes) as written before the registry and config-flag
changes; the checkpoints written now must match it.

Only when a change breaks old work directories on purpose (say so in the
README), record the new layout from one-step smoke runs:

  python tests/test_checkpoint_layout.py WORKDIR_OF_PAPER...   # e.g. runs/smoke/dmfn
"""

import json
import os
import sys

import pytest
import tensorflow as tf

from reproductions import papers

LAYOUTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                       "checkpoint_layouts.json")


def checkpoint_layout(workdir: str) -> dict[str, list[int]]:
    """variable name -> shape of the newest checkpoint of `workdir`."""
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert path, f"no checkpoint in {workdir}"
    return {name: list(shape) for name, shape in tf.train.list_variables(path)}


def differences(recorded: dict, written: dict) -> list[str]:
    """Readable differences between two layouts (empty when they match)."""
    lines = [f"missing now: {name} {recorded[name]}"
             for name in sorted(recorded.keys() - written.keys())]
    lines += [f"new: {name} {written[name]}" for name in sorted(written.keys() - recorded.keys())]
    lines += [f"shape of {name}: {recorded[name]} -> {written[name]}"
              for name in sorted(recorded.keys() & written.keys())
              if recorded[name] != written[name]]
    return lines


def test_the_recorded_layouts_are_those_of_the_registered_papers():
    with open(LAYOUTS) as f:
        recorded = json.load(f)
    assert set(recorded) == {record.name for record in papers.all_papers()}, (
        "record the layout of a new paper's smoke checkpoint (see this file's docstring)")
    assert all(len(layout) > 10 for layout in recorded.values())


@pytest.mark.parametrize("paper", [record.name for record in papers.all_papers()])
def test_checkpoints_keep_the_recorded_variable_names_and_shapes(paper, trained):
    with open(LAYOUTS) as f:
        recorded = json.load(f)[paper]
    changes = differences(recorded, checkpoint_layout(trained[paper]))
    assert not changes, "\n".join(changes[:40])


def test_differences_name_missing_new_and_reshaped_variables():
    assert differences({"a": [1], "b": [2]}, {"b": [3], "c": [4]}) == [
        "missing now: a [1]", "new: c [4]", "shape of b: [2] -> [3]"]
    assert differences({"a": [1]}, {"a": [1]}) == []


if __name__ == "__main__":
    layouts = {}
    if os.path.exists(LAYOUTS):
        with open(LAYOUTS) as f:
            layouts = json.load(f)
    for workdir in sys.argv[1:]:
        with open(os.path.join(workdir, "config.json")) as f:
            paper = json.load(f)["paper"]
        layouts[paper] = checkpoint_layout(workdir)
        print(f"{paper}: {len(layouts[paper])} variables from {workdir}")
    def paper_block(paper, layout):  # one line per variable, for readable diffs
        return f" {json.dumps(paper)}: {{\n" + ",\n".join(
            f"  {json.dumps(name)}: {json.dumps(shape)}"
            for name, shape in sorted(layout.items())) + "\n }"

    with open(LAYOUTS, "w") as f:
        f.write("{\n" + ",\n".join(paper_block(paper, layout)
                                   for paper, layout in sorted(layouts.items())) + "\n}\n")
