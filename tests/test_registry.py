"""Adding a paper is one folder and one name in the registry.

A tiny paper (tests/fixtures/tiny_paper/tiny: a two-layer network, an L1 loss in a
random box) is added the way a new paper is: its folder becomes `reproductions.tiny`
and its name joins `papers.PAPERS`. Then the checks every paper passes run on it: the
contract, the config checks, a smoke run that resumes to the same weights, the
parameter count, inference and export, and `convert` refusing a paper without released
weights. Nothing else in the suite is told about it.
"""

import importlib
import json
import os

import numpy as np
import pytest

import helpers
import test_config_flags
import test_paper_contract
from common import experiment
from reproductions import export
from reproductions import inpainters
from reproductions import papers

FIXTURE = os.path.join(helpers.REPO, "tests", "fixtures", "tiny_paper")


@pytest.fixture
def tiny(monkeypatch):
    """The tiny paper, registered for the length of one test."""
    import reproductions

    monkeypatch.setattr(reproductions, "__path__", [*reproductions.__path__, FIXTURE])
    monkeypatch.setattr(papers, "PAPERS", (*papers.PAPERS, "tiny"))
    importlib.invalidate_caches()
    papers.get.cache_clear()
    yield papers.get("tiny")
    papers.get.cache_clear()


def test_the_registry_finds_the_new_folder(tiny):
    assert tiny.folder() == os.path.join(FIXTURE, "tiny")
    assert [record.name for record in papers.all_papers()][-1] == "tiny"
    assert "tiny" in papers.fully_convolutional_papers()
    assert papers.config_path("tiny", "smoke.cfg") == os.path.join(FIXTURE, "tiny", "configs",
                                                                   "smoke.cfg")


def test_the_paper_contract_and_config_checks_hold(tiny, monkeypatch):
    test_paper_contract.test_a_paper_has_its_files_and_a_well_formed_record("tiny")
    test_paper_contract.test_the_smoke_config_builds_a_task_that_counts_its_parameters("tiny")
    test_config_flags.test_every_paper_flag_default_is_its_config_default("tiny")
    test_config_flags.test_configs_state_only_what_differs_from_the_defaults("tiny")
    test_config_flags.test_every_config_resolves_and_included_files_exist("tiny", monkeypatch)
    # The parameters by hand: 3x3 convs 4 -> 4 (smoke channels) -> 3, with biases.
    task = tiny.build_task(helpers.smoke_config("tiny"))
    assert tiny.parameter_counts(task) == {"generator_params": 3 * 3 * 4 * 4 + 4 + 3 * 3 * 4 * 3 + 3,
                                           "discriminator_params": 0}


def test_a_smoke_run_resumes_to_the_same_weights_then_inpaints_and_exports(tiny, tmp_path):
    config = helpers.smoke_config("tiny")
    experiment.run(tiny, config, helpers.run_config(tmp_path / "straight", num_steps=4))
    experiment.run(tiny, config, helpers.run_config(tmp_path / "resumed", num_steps=2))
    result = experiment.run(tiny, config, helpers.run_config(tmp_path / "resumed", num_steps=4))
    assert result.step == 4
    assert [r["step"] for r in helpers.train_records(tmp_path / "resumed")] == [1, 2, 3, 4]
    straight = inpainters.load_task(str(tmp_path / "straight"))[1].generator.get_weights()
    resumed = inpainters.load_task(str(tmp_path / "resumed"))[1].generator.get_weights()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "resumed" / "config.json") as f:
        assert json.load(f)["paper"] == "tiny"
    # Inference at a size of its own, and its SavedModel.
    image = np.random.default_rng(0).random((30, 41, 3)).astype(np.float32)
    mask = np.zeros((30, 41), bool)
    mask[8:20, 10:25] = True
    workdir = str(tmp_path / "resumed")
    completed = inpainters.load(f"tiny:{workdir}")(image, mask)
    assert completed.shape == image.shape
    np.testing.assert_array_equal(completed[~mask], image[~mask])
    assert not np.array_equal(completed[mask], image[mask])
    assert export.export(workdir, str(tmp_path / "exported")) == "tiny"
    served = inpainters.load(f"saved_model:{tmp_path / 'exported'}")(image, mask)
    np.testing.assert_allclose(served, completed, atol=1 / 255)


def test_convert_names_the_papers_with_released_weights(tiny, tmp_path):
    from reproductions import convert

    assert convert.convertible_papers() == ["context_encoder", "glcic", "dmfn"]
    with pytest.raises(ValueError, match=r"'tiny' \(its authors released none\)"):
        convert.convert("tiny", str(tmp_path / "none.pth"), str(tmp_path / "run"))
