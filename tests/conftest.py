"""Test set-up: quiet TensorFlow, and the optional shared data folder."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The perceptual metrics' weight files: never downloaded, and looked for in an
# empty folder (tests that need them write small ones and pass their paths).
os.environ["INPAINTING_OFFLINE"] = "1"
os.environ["INPAINTING_WEIGHTS_CACHE"] = os.path.join(
    os.environ.get("TMPDIR", "/tmp"), f"inpainting-test-weights-{os.getpid()}-empty")

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("INPAINTING_SHARED_DATA",
                             os.path.join(REPO_ROOT, "..", "shared", "data"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """paper -> work directory of a one-step run of its smoke config, for every
    registered paper (both size policies): trained once per test process."""
    import helpers
    from common import experiment
    from reproductions import papers

    workdirs = {}
    for record in papers.all_papers():
        workdir = tmp_path_factory.mktemp(record.name)
        experiment.run(record, helpers.smoke_config(record.name), helpers.run_config(workdir, 1))
        workdirs[record.name] = str(workdir)
    return workdirs


@pytest.fixture
def shared_data():
    """Path of the shared real-data folder; skips the test when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"needs the shared data folder ({SHARED_DATA}); set INPAINTING_SHARED_DATA")
    return SHARED_DATA
