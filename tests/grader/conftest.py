"""Fixtures shared by the grader's tests."""

import pytest

from grader.release import release


@pytest.fixture(scope="session")
def released_lab(tmp_path_factory):
    """The student version of the lab, as `grader release` makes it (do not modify)."""
    out = tmp_path_factory.mktemp("released-lab")
    release(out=out)
    return out
