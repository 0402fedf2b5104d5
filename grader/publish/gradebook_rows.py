"""New submissions' gradebook rows in bulk: the rows nbgrader's own API makes, inserted as
whole tables of rows.

nbgrader's `Gradebook.add_submission` builds a submission as ORM objects: the submission,
one submitted notebook per notebook of the assignment, a grade for each grade cell and
task cell, a comment for each solution cell and task cell. Through the ORM, with the two
scores set after, that was 7 to 12 ms of CPU a student, the largest cost left on the
coordinator of a large class. Here the same rows go in as one INSERT per table for a whole
batch of students, with the same values (nbgrader's defaults, ids from its own new_uuid,
our two auto scores), through SQLAlchemy Core, in the transaction of the batch: all of a
batch is written, or none of it.

Only submissions the gradebook does not hold yet are written so; a student regraded (whose
submission may carry an instructor's manual scores and comments) goes through nbgrader's
API as before (grader.publish.gradebook.GradebookWriter). A test writes the same records
both ways and reads them back through nbgrader's API, as formgrader and export do.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nbgrader.api import (
    Assignment,
    Comment,
    Grade,
    Gradebook,
    Notebook,
    Student,
    SubmittedAssignment,
    SubmittedNotebook,
    new_uuid,
)
from sqlalchemy import bindparam, insert, select, update

from grader.plugin import Lab


@dataclass(frozen=True)
class NotebookCells:
    """One notebook of the assignment, as a submission mirrors it."""

    id: str
    name: str
    grade_cells: tuple  # (cell id, cell name)
    comment_cells: tuple  # cell ids: solution cells, then task cells
    task_cells: tuple  # cell ids: a task cell gets a grade too


class NewSubmissions:
    """Writes the rows of students without a submission yet, for one assignment."""

    def __init__(self, gradebook: Gradebook, lab: Lab) -> None:
        self.gradebook, self.lab = gradebook, lab
        assignment = gradebook.find_assignment(lab.assignment)
        self.assignment_id = assignment.id
        self.notebooks = tuple(_cells_of(notebook) for notebook in assignment.notebooks)
        # grade cell name -> exercise id: the cells our scores go to
        self.exercise_of = {exercise.test_cell: exercise.id for exercise in lab.exercises}
        self.notebook_name = Path(lab.notebook_name).stem

    def split(self, records: list) -> tuple[list, list]:
        """(records whose submission is new, the rest): the rest go through nbgrader's API."""
        ids = [record.student_id for record in records if record.has_notebook]
        held = set(self._scalars(select(SubmittedAssignment.student_id).where(
            SubmittedAssignment.assignment_id == self.assignment_id,
            SubmittedAssignment.student_id.in_(ids)))) if ids else set()
        new: list = []
        rest: list = []
        seen: set[str] = set()
        for record in records:
            fresh = record.has_notebook and record.student_id not in held | seen
            (new if fresh else rest).append(record)
            seen.add(record.student_id)
        return new, rest

    def insert(self, records: list) -> None:
        """Insert `records` (each a new submission, split's first list) in the session's
        transaction: the caller commits."""
        if not records:
            return
        ids = [record.student_id for record in records]
        known = set(self._scalars(select(Student.id).where(Student.id.in_(ids))))
        tables = _Rows()
        for record in records:
            if record.student_id not in known:
                tables.students.append({"id": record.student_id, "first_name": None,
                                        "last_name": None, "email": None,
                                        "lms_user_id": None})
            self._submission_rows(record, tables)
        session = self.gradebook.db
        session.flush()  # what nbgrader's API left pending goes first
        for model, rows in ((Student, tables.students),
                            (SubmittedAssignment, tables.submissions),
                            (SubmittedNotebook, tables.notebooks), (Grade, tables.grades),
                            (Comment, tables.comments)):
            if rows:
                session.execute(insert(model.__table__), rows)

    def _submission_rows(self, record, tables):
        submission = new_uuid()
        tables.submissions.append({"id": submission, "assignment_id": self.assignment_id,
                                   "student_id": record.student_id, "timestamp": None,
                                   "extension": None})
        for notebook in self.notebooks:
            submitted = new_uuid()
            tables.notebooks.append({"id": submitted, "assignment_id": submission,
                                     "notebook_id": notebook.id, "flagged": False,
                                     "late_submission_penalty": None})
            for cell_id, name in notebook.grade_cells:
                tables.grades.append(self._grade(record, notebook, submitted, cell_id, name))
            for cell_id in notebook.comment_cells:
                tables.comments.append({"id": new_uuid(), "cell_id": cell_id,
                                        "notebook_id": submitted, "auto_comment": None,
                                        "manual_comment": None})
            for cell_id in notebook.task_cells:
                tables.grades.append(_grade_row(submitted, cell_id, None, True))

    def _grade(self, record, notebook, submitted, cell_id, name):
        """A grade cell's row: our score on an exercise's test cell, final (no manual
        score exists yet); nbgrader's defaults elsewhere."""
        exercise = self.exercise_of.get(name) if notebook.name == self.notebook_name else None
        if exercise is None:
            return _grade_row(submitted, cell_id, None, True)
        verdict = record.verdicts.get(exercise)
        return _grade_row(submitted, cell_id, float(verdict.points if verdict else 0), False)

    def _scalars(self, statement):
        return self.gradebook.db.execute(statement).scalars().all()


class _Rows:
    """The rows of a batch, table by table."""

    def __init__(self) -> None:
        self.students: list[dict] = []
        self.submissions: list[dict] = []
        self.notebooks: list[dict] = []
        self.grades: list[dict] = []
        self.comments: list[dict] = []


def _grade_row(notebook_id, cell_id, auto_score, needs_manual_grade):
    return {"id": new_uuid(), "cell_id": cell_id, "notebook_id": notebook_id,
            "auto_score": auto_score, "manual_score": None, "extra_credit": None,
            "needs_manual_grade": needs_manual_grade}


def _cells_of(notebook: Notebook) -> NotebookCells:
    return NotebookCells(
        notebook.id, notebook.name,
        tuple((cell.id, cell.name) for cell in notebook.grade_cells),
        tuple(cell.id for cell in [*notebook.solution_cells, *notebook.task_cells]),
        tuple(cell.id for cell in notebook.task_cells))



@dataclass(frozen=True)
class SubmissionLateness:
    """What nbgrader keeps of one student's late work (naive UTC, as it stores times)."""

    student_id: str
    timestamp: datetime | None
    extension: timedelta | None
    penalty: float  # each notebook's late_submission_penalty, in points


def write_changed_lateness(session: Any, assignment: str, wanted: list[SubmissionLateness]) -> int:
    """Make the gradebook's submissions of `assignment` hold `wanted`, updating only the
    rows that differ (read in two queries for the whole class: one ORM query per student
    cost 1.4 ms each, at every batch, for a class that mostly had not changed); the count
    of rows updated. Students without a submission are left out."""
    held = {row.student_id: row for row in session.execute(
        select(SubmittedAssignment.id, SubmittedAssignment.student_id,
               SubmittedAssignment.timestamp, SubmittedAssignment.extension)
        .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)
        .where(Assignment.name == assignment))}
    penalties: dict[str, list] = {}
    for row in session.execute(
            select(SubmittedNotebook.id, SubmittedNotebook.assignment_id,
                   SubmittedNotebook.late_submission_penalty)
            .join(SubmittedAssignment,
                  SubmittedAssignment.id == SubmittedNotebook.assignment_id)
            .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)
            .where(Assignment.name == assignment)):
        penalties.setdefault(row.assignment_id, []).append(row)
    submissions, notebooks = [], []
    for lateness in wanted:
        row = held.get(lateness.student_id)
        if row is None:
            continue
        if (row.timestamp, row.extension) != (lateness.timestamp, lateness.extension):
            submissions.append({"row": row.id, "new_timestamp": lateness.timestamp,
                                "new_extension": lateness.extension})
        notebooks += [{"row": notebook.id, "new_penalty": lateness.penalty}
                      for notebook in penalties.get(row.id, ())
                      if notebook.late_submission_penalty != lateness.penalty]
    _updated(session, SubmittedAssignment, submissions, timestamp="new_timestamp",
             extension="new_extension")
    _updated(session, SubmittedNotebook, notebooks, late_submission_penalty="new_penalty")
    return len(submissions) + len(notebooks)


def _updated(session, model, rows, **columns):
    if rows:
        table = model.__table__
        session.execute(update(table).where(table.c.id == bindparam("row")).values(
            **{column: bindparam(name) for column, name in columns.items()}), rows)
