"""Settings shared by every test: quiet TensorFlow, a headless plotting backend, the
project root on sys.path so that the lab's modules import as the notebook imports them, and
each test's tier marks (tests/tiers.py)."""

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

import tiers  # noqa: E402  (tests/ is on sys.path: pytest's rootdir-relative import)


def pytest_configure(config):
    for name, text in tiers.MARKS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


# Session fixtures that grade a whole class: every file that uses one runs on the same
# test process (`make test` runs two, pytest-xdist's --dist loadgroup), which grades it once.
SHARED_CLASS_FIXTURES = ("graded",)
SHARED_GROUP = "graded-corpus"


def pytest_collection_modifyitems(config, items):
    """Mark each test with its file's tier, as tests/tiers.py says, and with the group of
    tests that one test process runs together: its file's, or the group of the files that
    share a graded class (run first, being the longest)."""
    files = {item: _relative(item) for item in items}
    sharing = {files[item] for item in items if _uses_a_shared_class(item)}
    for item in items:
        for name in tiers.SLOW.get(files[item], ()):
            item.add_marker(getattr(pytest.mark, name))
        group = SHARED_GROUP if files[item] in sharing else files[item]
        item.add_marker(pytest.mark.xdist_group(name=group))
    items.sort(key=lambda item: files[item] not in sharing)  # stable: file order kept


def _relative(item):
    return Path(str(item.path)).resolve().relative_to(PROJECT_ROOT).as_posix()


def _uses_a_shared_class(item):
    definitions = getattr(item, "_fixtureinfo", None)
    definitions = definitions.name2fixturedefs if definitions else {}
    return any(definitions.get(name) and definitions[name][-1].scope == "session"
               for name in SHARED_CLASS_FIXTURES)


@pytest.fixture(scope="session")
def project_root():
    return PROJECT_ROOT
