"""Fixtures shared by the grader's tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def made_results_course(tmp_path_factory):
    """OUT's nbgrader course and its sqlite gradebook as nbgrader's generate_assignment
    makes them (seconds, in a subprocess): made once per session, copied for each OUT
    (`copy_results_course`). Do not modify."""
    from grader.publish.gradebook import gradebook_url, open_results_course

    template = tmp_path_factory.mktemp("results-course")
    open_results_course(template, LAB, gradebook_url(template, None))
    return template


@pytest.fixture(scope="session")
def results_course_copier(made_results_course):
    """open_results_course without nbgrader, for the tests whose subject is not nbgrader's
    generate step (the real batch tests run it): the session's course is copied into OUT,
    its gradebook to the sqlite file of the URL, and the configuration written for OUT."""
    # Imported here: the fast tier's tests need neither nbgrader's course nor SQLAlchemy.
    from sqlalchemy.engine import make_url

    from grader.course.course import create_course
    from grader.publish.gradebook import results_course

    def copied(out, lab, db_url, journal=None):
        assert lab is LAB, "the session's course is C2_W2's"
        database = Path(make_url(db_url).database)
        # An empty file is what check_gradebook's connection left; one with data holds the
        # tables and the assignment already.
        if not database.exists() or database.stat().st_size == 0:
            database.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(made_results_course / "gradebook.db", database)
        root = results_course(out, lab).root
        shutil.copytree(results_course(made_results_course, lab).root, root,
                        dirs_exist_ok=True)
        return create_course(root, lab, db_url=db_url, for_release=False)

    return copied


@pytest.fixture
def copy_results_course(results_course_copier, monkeypatch):
    """The pipeline's results course copied (results_course_copier), not made by nbgrader."""
    from grader import pipeline

    monkeypatch.setattr(pipeline, "open_results_course", results_course_copier)
