"""Every registered paper keeps the contract the tools rely on (reproductions/papers.py).

A paper is a folder under reproductions/ with a `Paper` record in paper.py and
one name in `papers.PAPERS`; this test is what "satisfies the contract" means:
the files every paper has, a Config whose fields are its flags, a task that
builds and counts its parameters, a run that trains, exports and inpaints.
"""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import helpers
from common import config_flags
from common import experiment
from common import train_loop
from common import vgg
from reproductions import export
from reproductions import inpainters
from reproductions import papers

FILES = ("README.md", "paper.py", "train.py", "train_lib.py", "model.py",
         "configs/demo.cfg", "configs/smoke.cfg")


def test_the_registry_lists_each_paper_folder_once():
    assert len(set(papers.PAPERS)) == len(papers.PAPERS)
    folders = {name for name in os.listdir(papers.REPRODUCTIONS)
               if os.path.exists(os.path.join(papers.REPRODUCTIONS, name, "paper.py"))}
    assert folders == set(papers.PAPERS)  # a paper.py nobody registered would go unseen


@pytest.mark.parametrize("name", papers.PAPERS)
def test_a_paper_has_its_files_and_a_well_formed_record(name):
    record = papers.get(name)
    assert record.name == name and record.title
    for path in FILES:
        assert os.path.exists(os.path.join(record.folder(), path)), path
    # The paper's own settings: paper.cfg, or one per variant (paper_center.cfg, ...).
    assert glob.glob(os.path.join(record.configs_dir(), "paper*.cfg"))
    assert dataclasses.is_dataclass(record.config)
    assert config_flags.flag_fields(record.config)
    # Each paper declares its schedule and whether XLA pays for its step.
    assert set(record.config.RUN_DEFAULTS) == {"batch_size", "num_steps", "jit_compile"}
    assert set(record.config.RESUMABLE) <= {f.name for f in dataclasses.fields(record.config)}
    policy, size = record.size_policy
    assert policy in ("resize", "pad") and size >= 1
    assert isinstance(record.describe(record.config()), str)


def test_xla_is_on_by_default_only_where_it_made_the_cpu_step_faster():
    # Measured (docs/performance.md): XLA makes Context Encoders 1.5-5 times
    # faster on a CPU, and GLCIC's, DMFN's and (with AVX-512) Structural
    # Inpainting's steps slower (XLA's CPU convolutions and their gradients).
    measured = {"context_encoder": True, "glcic": False, "structural_inpainting": False,
                "dmfn": False}
    assert {name: papers.get(name).config.RUN_DEFAULTS["jit_compile"]
            for name in measured} == measured
    glcic = papers.get("glcic").config()
    assert experiment.xla_choice("glcic", glcic, False).startswith(
        "XLA off (--nojit_compile), glcic's default: the faster on a CPU")
    assert experiment.xla_choice("glcic", glcic, True) == (
        "XLA on (--jit_compile), not glcic's default")


@pytest.mark.parametrize("name", papers.PAPERS)
def test_the_smoke_config_builds_a_task_that_counts_its_parameters(name):
    record = papers.get(name)
    task = record.build_task(vgg.without_weights(helpers.smoke_config(name)))
    assert isinstance(task, train_loop.Task)
    counts = record.parameter_counts(task)
    assert set(counts) == {"generator_params", "discriminator_params"}
    assert counts["generator_params"] > 0 and counts["discriminator_params"] >= 0
    json.dumps(counts)  # what --dry_run prints


@pytest.mark.parametrize("name", papers.PAPERS)
def test_a_trained_smoke_run_exports_and_inpaints(trained, name, tmp_path):
    workdir = trained[name]
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["paper"] == name
    image = np.random.default_rng(0).random((96, 80, 3)).astype(np.float32)
    mask = np.zeros((96, 80), bool)
    mask[30:60, 25:55] = True
    completed = inpainters.load(f"{name}:{workdir}")(image, mask)
    assert completed.shape == image.shape
    np.testing.assert_array_equal(completed[~mask], image[~mask])
    output = str(tmp_path / "exported")
    assert export.export(workdir, output) == name
    served = inpainters.load(f"saved_model:{output}")(image, mask)
    assert served.shape == image.shape
    np.testing.assert_array_equal(served[~mask], image[~mask])
