"""Settings shared by every test: quiet TensorFlow, a headless plotting backend, the
project root on sys.path so that the lab's modules import as the notebook imports them, and
each test's tier marks (tests/tiers.py)."""

import os
import sys
import tempfile
from pathlib import Path

# nbgrader's generated courses (grader.course.generated), shared by the run's test processes
# and the grader commands they start, apart from the user's own cache.
os.environ.setdefault("GRADER_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / f"grader-tests-cache-{os.getuid()}"))
# Must be set before TensorFlow is first imported, or its C++ logging is already on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402
import pytest  # noqa: E402

# Tests have no display; Agg draws to memory.
matplotlib.use("Agg")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import tiers  # noqa: E402  (tests/ is on sys.path: pytest's rootdir-relative import)


def pytest_configure(config):
    for name, text in tiers.MARKS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_sessionfinish(session, exitstatus):
    """End the kernel templates the run's `grader validate` kept (removing their folder
    ends them within a second; a test process still validating starts another)."""
    from grader.course.generated import cache_root
    from grader.run.kept_templates import end_all

    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the other may still be grading with a template kept there
    root = cache_root()
    if root is not None:
        end_all(root)


def pytest_collection_modifyitems(config, items):
    """Mark each test with its file's tier, as tests/tiers.py says."""
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(PROJECT_ROOT).as_posix()
        for name in tiers.SLOW.get(relative, ()):
            item.add_marker(getattr(pytest.mark, name))


@pytest.fixture(scope="session")
def project_root():
    return PROJECT_ROOT
