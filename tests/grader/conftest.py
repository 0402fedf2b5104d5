"""Fixtures shared by the grader's tests."""

import os
import subprocess
import sys

import corpus
import pytest

from grader.course.release import release
from grader.labs.c2_w2 import LAB
from grader.run.sandbox import protection

# Set (to anything) to skip the tests that need the sandbox (root, Linux namespaces,
# cgroups), on a laptop without root say. Without it they fail where the sandbox is missing:
# CI (`make test`, which never sets it) must run them, not skip them.
NO_SANDBOX_OPT_OUT = "GRADER_TESTS_WITHOUT_SANDBOX"


@pytest.fixture(scope="session")
def sandbox_required():
    """Nothing, where the sandbox is fully available; else a skip if opted out, a failure
    if not."""
    if os.environ.get(NO_SANDBOX_OPT_OUT):
        pytest.skip(f"{NO_SANDBOX_OPT_OUT} is set: the sandbox's tests are skipped on purpose")
    here = protection()
    if not (here.namespaces and here.cgroups):
        pytest.fail(f"the sandbox is not available here ({'; '.join(here.missing)}); run as "
                    f"root on Linux, or set {NO_SANDBOX_OPT_OUT}=1 to skip these tests",
                    pytrace=False)


@pytest.fixture(scope="session")
def released_lab(tmp_path_factory):
    """The student version of the lab, as `grader release` makes it (do not modify)."""
    out = tmp_path_factory.mktemp("released-lab")
    release(lab=LAB, out=out)
    return out


@pytest.fixture(scope="session")
def class_dir(released_lab, tmp_path_factory):
    """The corpus of submissions, one folder per student (do not modify)."""
    return corpus.build(released_lab, tmp_path_factory.mktemp("class") / "submissions")


@pytest.fixture(scope="session")
def graded(class_dir, tmp_path_factory):
    """The corpus graded once per session by `python -m grader autograde`, which takes about
    a minute: (OUT, the finished process). Do not modify OUT."""
    out = tmp_path_factory.mktemp("graded")
    result = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(class_dir), "--out", str(out),
         "--cell-timeout", "10", "--workers", "2"],
        capture_output=True, text=True, cwd=LAB.root, timeout=900)
    assert result.returncode == 0, result.stderr
    return out, result
