"""Fixtures shared by the grader's tests."""

import subprocess
import sys

import corpus
import pytest

from grader.course.release import release
from grader.labs.c2_w2 import LAB


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
