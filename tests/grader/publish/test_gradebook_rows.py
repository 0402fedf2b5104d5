"""New submissions' gradebook rows in bulk (grader.publish.gradebook_rows) are the rows
nbgrader's own API makes: the same records written both ways read back the same through
nbgrader's API (what formgrader, export and generate_feedback read)."""

import pytest
from nbgrader.api import Gradebook

from grader.labs.c2_w2 import LAB as lab
from grader.publish.gradebook import GradebookWriter, gradebook_url
from grader.publish.gradebook_rows import NewSubmissions
from grader.publish.journal import StudentRecord
from grader.records import ExerciseVerdict

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


def _record(student, points=(1.0, 2.5), has_notebook=True):
    verdicts = {exercise.id: ExerciseVerdict(exercise.id, score, lab.points[exercise.id])
                for exercise, score in zip(lab.exercises, points, strict=True)}
    return StudentRecord(student, "graded", verdicts=verdicts, has_notebook=has_notebook)


FIRST = [_record("ann"), _record("bob", (0.0, 0.0)), _record("cy", has_notebook=False),
         _record("dee", (3.0, 0.5)), _record("ann", (2.0, 2.0))]  # ann twice: the last stands
SECOND = [_record("bob", (1.0, 1.0)), _record("cy"), _record("dee", has_notebook=False),
          _record("eve")]


def _gradebook(tmp_path, name, results_course_copier):
    out = tmp_path / name
    url = gradebook_url(out, None)
    results_course_copier(out, lab, url)
    return url


def _written(url, batches, monkeypatch, *, bulk):
    with monkeypatch.context() as patch:
        if not bulk:  # every record through nbgrader's API
            patch.setattr(NewSubmissions, "split", lambda self, records: ([], list(records)))
        writer = GradebookWriter(lab, url)
        try:
            for batch in batches:
                writer.record_many(batch)
                _grade_by_hand(writer.gradebook)
        finally:
            writer.close()
    return _as_nbgrader_reads_it(url)


def _grade_by_hand(gradebook):
    """An instructor's manual score on bob's first exercise, between the batches."""
    grade = gradebook.find_grade(lab.exercises[0].test_cell, "C2_W2_Assignment",
                                 lab.assignment, "bob")
    grade.manual_score = 0.5
    gradebook.db.commit()


def _without_ids(rows):
    return sorted((tuple(sorted((key, value) for key, value in row.items() if key != "id"))
                   for row in rows), key=repr)


def _as_nbgrader_reads_it(url):
    gradebook = Gradebook(url, course_id=lab.course_id)
    try:
        students = sorted(student.id for student in gradebook.students)
        seen = {"students": students,
                "submissions": _without_ids(gradebook.submission_dicts(lab.assignment)),
                "notebooks": _without_ids(gradebook.notebook_submission_dicts(
                    "C2_W2_Assignment", lab.assignment))}
        for student in students:
            try:
                submission = gradebook.find_submission(lab.assignment, student)
            except Exception:
                continue
            seen[student] = [(notebook.name, notebook.flagged, notebook.score,
                              notebook.needs_manual_grade,
                              sorted((grade.name, grade.auto_score, grade.manual_score,
                                      grade.extra_credit, grade.needs_manual_grade)
                                     for grade in notebook.grades),
                              sorted((comment.name, comment.auto_comment,
                                      comment.manual_comment)
                                     for comment in notebook.comments))
                             for notebook in submission.notebooks]
        return seen
    finally:
        gradebook.close()


@pytest.mark.usefixtures("copy_results_course")
def test_bulk_rows_read_back_as_nbgraders_own(tmp_path, monkeypatch, results_course_copier):
    batches = [FIRST, SECOND]
    bulk = _written(_gradebook(tmp_path, "bulk", results_course_copier), batches, monkeypatch,
                    bulk=True)
    api = _written(_gradebook(tmp_path, "api", results_course_copier), batches, monkeypatch,
                   bulk=False)
    assert bulk == api
    assert bulk["students"] == ["ann", "bob", "cy", "dee", "eve"]
    assert "dee" not in bulk  # no notebook any more: no submission
    bob = {grade[0]: grade for grade in bulk["bob"][0][4]}
    assert bob[lab.exercises[0].test_cell][1:3] == (1.0, 0.5)  # the manual score stands
    assert bob[lab.exercises[0].test_cell][4] is True  # and asks for review, as nbgrader does


@pytest.mark.usefixtures("copy_results_course")
def test_new_submissions_are_bulk_and_held_ones_go_through_nbgraders_api(
        tmp_path, results_course_copier):
    writer = GradebookWriter(lab, _gradebook(tmp_path, "out", results_course_copier))
    try:
        writer.record_many([_record("ann")])
        new, rest = writer._new.split([_record("ann"), _record("bob"),
                                       _record("cy", has_notebook=False), _record("bob")])
        assert [record.student_id for record in new] == ["bob"]
        assert [record.student_id for record in rest] == ["ann", "cy", "bob"]
    finally:
        writer.close()
