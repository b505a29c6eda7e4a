"""Test set-up: quiet TensorFlow, and the optional shared data folder."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("INPAINTING_SHARED_DATA",
                             os.path.join(REPO_ROOT, "..", "shared", "data"))


@pytest.fixture
def shared_data():
    """Path of the shared real-data folder; skips the test when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"needs the shared data folder ({SHARED_DATA}); set INPAINTING_SHARED_DATA")
    return SHARED_DATA
