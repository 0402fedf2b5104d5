"""grader.course.generated with the real nbgrader: a course or a release taken from the cache is
the one nbgrader makes, as nbgrader's own gradebook API reads it."""

import filecmp

import pytest
from nbgrader.api import Gradebook

from grader.course import generated
from grader.course.release import release
from grader.labs.c2_w2 import LAB as lab
from grader.publish.gradebook import gradebook_url, open_results_course

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A cache of this test's own, and the courses nbgrader really ran in."""
    monkeypatch.setenv(generated.CACHE_ENV, str(tmp_path / "cache"))
    courses, real_run = [], generated._run

    def counted(course):
        courses.append(course.root)
        real_run(course)

    monkeypatch.setattr(generated, "_run", counted)
    return courses


def _assignment_as_nbgrader_reads_it(db_url):
    with Gradebook(db_url, course_id=lab.course_id) as gradebook:
        assignment = gradebook.find_assignment(lab.assignment)
        notebook, = assignment.notebooks
        return {
            "max_score": assignment.max_score,
            "grade cells": sorted((cell.name, cell.max_score, cell.cell_type)
                                  for cell in notebook.grade_cells),
            "source cells": sorted((cell.name, cell.checksum, cell.locked, cell.source)
                                   for cell in notebook.source_cells),
            "task cells": sorted(cell.name for cell in notebook.task_cells),
        }


def _same_tree(first, second):
    comparison = filecmp.dircmp(first, second)
    assert not comparison.left_only and not comparison.right_only and not comparison.diff_files
    for name in comparison.common_dirs:
        _same_tree(first / name, second / name)


def test_a_results_course_from_the_cache_is_the_one_nbgrader_makes(tmp_path, runs):
    made, copied = tmp_path / "made", tmp_path / "copied"
    open_results_course(made, lab, gradebook_url(made, None))
    open_results_course(copied, lab, gradebook_url(copied, None))
    assert runs == [(made / "nbgrader").resolve()]
    assert _assignment_as_nbgrader_reads_it(gradebook_url(copied, None)) == \
        _assignment_as_nbgrader_reads_it(gradebook_url(made, None))
    _same_tree(made / "nbgrader" / "release", copied / "nbgrader" / "release")


def test_a_release_from_the_cache_is_the_one_nbgrader_makes(tmp_path, runs):
    first = release(lab=lab, out=tmp_path / "first")
    second = release(lab=lab, out=tmp_path / "second")
    assert len(runs) == 1
    _same_tree(first.parent, second.parent)
