"""Settings shared by every test: quiet TensorFlow, a headless plotting backend, and the
project root on sys.path so that the lab's modules import as the notebook imports them."""

import os
import sys
from pathlib import Path

# Must be set before TensorFlow is first imported, or its C++ logging is already on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402
import pytest  # noqa: E402

# Tests have no display; Agg draws to memory.
matplotlib.use("Agg")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


@pytest.fixture(scope="session")
def project_root():
    return PROJECT_ROOT
