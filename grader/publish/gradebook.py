"""nbgrader's gradebook, and the nbgrader course in OUT that reads it.

    OUT/gradebook.db        nbgrader's gradebook (unless --db names another database)
    OUT/nbgrader/           an nbgrader course on it: formgrader, `nbgrader export` and
                            generate_feedback work there
    OUT/nbgrader/autograded/<student>/<assignment>/<notebook>   the graded notebook
    OUT/nbgrader/exchange/<course>/outbound/<assignment>/      the assignment as released:
                            formgrader reads "released" from the exchange, and
                            release_feedback writes there

The gradebook is checked before grading starts (connect, create tables), so that a batch
never grades a class it cannot record. A database that fails later costs nothing else:
each student's row says in the journal whether it reached the gradebook, and
`python -m grader publish OUT` (or the next `autograde`) writes those that did not.

In nbgrader's model a submission is a set of notebooks that formgrader and
generate_feedback read from autograded/. A student without a graded notebook (status
invalid) is therefore added as a student with no submission, which nbgrader's export and
formgrader already count as 0 points, instead of a submission whose notebook is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SAWarning, SQLAlchemyError

from grader.course.course import Course, create_course
from grader.course.generated import generate_results
from grader.errors import GraderError
from grader.lateness import LatePolicy
from grader.plugin import Lab
from grader.publish.files import write_atomically
from grader.publish.handback import SECRET_FILE

if TYPE_CHECKING:
    from nbgrader.api import Gradebook

    from grader.publish.gradebook_rows import NewSubmissions
    from grader.publish.journal import Journal, StudentRecord

# SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the driver installed
# (requirements.txt) is psycopg2, so such a URL is given that driver explicitly.
POSTGRESQL_DRIVER = "postgresql+psycopg2"
CONNECT_SECONDS = 10  # a database host that does not answer must not hang the batch


class GradebookError(GraderError, RuntimeError):
    """The gradebook cannot be reached or written."""


def gradebook_url(out: str | Path, db_url: str | None) -> str:
    """The gradebook's SQLAlchemy URL: `db_url`, or sqlite in `out`."""
    if not db_url:
        return f"sqlite:///{Path(out).resolve() / 'gradebook.db'}"
    try:
        url = make_url(db_url)
    except ArgumentError as error:
        raise GradebookError(f"the gradebook URL {db_url!r} is not a database URL "
                             "(e.g. postgresql://user@host:5432/gradebook)") from error
    if url.drivername == "postgresql":
        url = url.set(drivername=POSTGRESQL_DRIVER)
    if url.drivername.startswith("postgresql") and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_SECONDS)})
    return url.render_as_string(hide_password=False)


def sqlite_file(db_url: str) -> Path | None:
    """The file of an SQLite gradebook; None for another database, SQLite in memory, or a
    relative path (nbgrader reads it from the course's folder, not from ours)."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    path = Path(url.database)
    return path if path.is_absolute() else None


def check_gradebook(db_url: str) -> None:
    """Connect to the gradebook's database, or GradebookError saying why. (Its tables are
    made by nbgrader with the results course, open_results_course, while grading goes on.)"""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as error:
        raise GradebookError(f"cannot use the gradebook at {_shown(db_url)}: "
                             f"{_first_line(error)}") from None
    finally:
        engine.dispose()


def results_course(out: str | Path, lab: Lab) -> Course:
    """The nbgrader course in OUT (its folders; open_results_course makes it)."""
    return Course(Path(out).resolve() / "nbgrader", lab)


def open_results_course(out: str | Path, lab: Lab, db_url: str,
                        journal: Journal | None = None) -> Course:
    """Make the nbgrader course in `out`, with the assignment, its grade cells and the
    gradebook's tables in the database. It runs nbgrader (seconds): the caller may do it
    while grading goes on. With the `journal`, nbgrader runs only when the source notebook,
    the database or the course's place changed since it last did."""
    root = results_course(out, lab).root
    course = create_course(root, lab, db_url=db_url, for_release=False,
                           exchange=root / EXCHANGE)
    made = {"source": hashlib.sha256(lab.source_notebook.read_bytes()).hexdigest(),
            "db": db_url, "root": str(course.root)}
    if journal is None or journal.fact("course") != made:
        # It records the assignment if new and follows changes of the source notebook
        # (points, cells); with the same source it changes nothing.
        generate_results(course, sqlite_file(db_url))
        if journal is not None:
            journal.set_fact("course", made)
    released_in_exchange(course, lab)
    return course


EXCHANGE = "exchange"


def released_in_exchange(course: Course, lab: Lab) -> None:
    """Put the assignment's release into the course's own exchange, as `nbgrader
    release_assignment` would: the students have it, so formgrader says "released"."""
    outbound = course.root / EXCHANGE / lab.course_id / "outbound" / lab.assignment
    if course.release_dir.is_dir() and not outbound.is_dir():
        shutil.copytree(course.release_dir, outbound)
    for folder in (course.root / EXCHANGE, course.root / EXCHANGE / lab.course_id):
        folder.chmod(0o755)  # as release_assignment leaves it: students may read it


class GradebookWriter:
    """Writes students' rows into the gradebook, one at a time, as results arrive."""

    def __init__(self, lab: Lab, db_url: str) -> None:
        self.lab = lab
        self.gradebook = _gradebook(db_url, lab)
        self._new: NewSubmissions | None = None  # made in the first batch's transaction

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.gradebook.close()

    def record(self, record: StudentRecord) -> None:
        """Write one journal record (grader.publish.journal.StudentRecord)."""
        self.record_many([record])

    def record_many(self, records: list[StudentRecord]) -> None:
        """Write journal records in one transaction: all of them, or none. New submissions
        go in as bulk rows (grader.publish.gradebook_rows), the rest through nbgrader's API."""
        try:
            with _quiet(), _one_commit(self.gradebook.db):
                if self._new is None:
                    from grader.publish.gradebook_rows import NewSubmissions

                    self._new = NewSubmissions(self.gradebook, self.lab)
                new, rest = self._new.split(records)
                self._new.insert(new)
                for record in rest:
                    self._record(record)
        except Exception as error:
            with contextlib.suppress(Exception):
                self.gradebook.db.rollback()
            raise GradebookError(_first_line(error)) from error

    def _record(self, record):
        self.gradebook.update_or_create_student(record.student_id)
        if not record.has_notebook:
            self._forget_submission(record.student_id)
            return
        self.gradebook.update_or_create_submission(self.lab.assignment, record.student_id)
        notebook_id = Path(self.lab.notebook_name).stem
        for exercise in self.lab.exercises:
            grade = self.gradebook.find_grade(exercise.test_cell, notebook_id,
                                              self.lab.assignment, record.student_id)
            verdict = record.verdicts.get(exercise.id)
            grade.auto_score = float(verdict.points if verdict else 0)
            # As nbgrader's autograde does: a score a grader gave by hand stays in force and
            # the cell is flagged for review; otherwise the automatic score is final.
            grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()

    def _forget_submission(self, student_id):
        """Drop what an earlier run recorded for a student who now has no notebook."""
        from nbgrader.api import MissingEntry

        with contextlib.suppress(MissingEntry):
            self.gradebook.remove_submission(self.lab.assignment, student_id)


def write_lateness(db_url: str, lab: Lab, records: list[StudentRecord],
                   policy: LatePolicy | None = None) -> None:
    """Put the late work into the gradebook as nbgrader keeps it, so that `nbgrader export`
    and formgrader show it: the assignment's due date, each submission's timestamp and
    extension, and each notebook's late_submission_penalty (points, under `policy`).
    Written whole at every publish: a new due date or extension changes them all."""
    from grader.publish.gradebook_rows import write_changed_lateness

    policy = policy or LatePolicy()
    due = policy.due_of(None)
    gradebook = _gradebook(db_url, lab)
    try:
        with _quiet():
            gradebook.update_or_create_assignment(lab.assignment, duedate=_naive_utc(due))
            write_changed_lateness(gradebook.db, lab.assignment, [
                _lateness_of(record, lab, policy, due) for record in records])
            gradebook.db.commit()
    except Exception as error:
        with contextlib.suppress(Exception):
            gradebook.db.rollback()
        raise GradebookError(_first_line(error)) from error
    finally:
        gradebook.close()


def _gradebook(db_url: str, lab: Lab) -> Gradebook:
    """nbgrader's Gradebook of `lab`'s course at `db_url`, or GradebookError. nbgrader is
    imported here, not with this module: its package costs 0.7 s of CPU (its server
    extensions), which a batch's start need not wait for (the gradebook is written in the
    publisher's thread, once grading goes on)."""
    from nbgrader.api import Gradebook

    try:
        return Gradebook(db_url, course_id=lab.course_id)
    except Exception as error:
        raise GradebookError(_first_line(error)) from error


def _lateness_of(record, lab, policy, due):
    """A SubmissionLateness: what nbgrader keeps of `record`'s late work under `policy`."""
    from grader.publish.gradebook_rows import SubmissionLateness

    own_due = policy.due_of(record.student_id)
    _, penalty = policy.lateness(record.student_id, record.timestamp, record.score,
                                 lab.max_score)
    return SubmissionLateness(record.student_id, _naive_utc(record.timestamp or None),
                              own_due - due if own_due and due and own_due > due else None,
                              penalty)


def _naive_utc(moment):
    """A time as nbgrader's gradebook stores it: naive, in UTC."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).replace(tzinfo=None)


def save_graded_notebook(course: Course, student_id: str, text: str | None,
                         exchange_secret: str = "") -> None:
    """Write the student's graded notebook (`text`, as nbformat writes it) into the course,
    with the exchange's submission secret when the student had one (what fetch_feedback
    finds their page by); remove an old one when `text` is None."""
    if text is None:
        remove_graded_notebook(course, student_id)
        return
    path = course.autograded_notebook(student_id)
    write_atomically(path, text)
    if exchange_secret:
        write_atomically(path.with_name(SECRET_FILE), exchange_secret)


def remove_graded_notebook(course: Course, student_id: str) -> None:
    assignment_dir = course.autograded_notebook(student_id).parent
    shutil.rmtree(assignment_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # the student's folder, unless it holds more
        assignment_dir.parent.rmdir()


@contextlib.contextmanager
def _one_commit(session):
    """nbgrader's Gradebook commits in every call (a student's row is five): inside, its
    commits only flush (later queries see the rows), and one commit ends the block. A
    commit per student was 40% of a row's CPU and most of its wall time (fsync)."""
    session.commit = session.flush  # an attribute of this session object, over the method
    try:
        yield
    finally:
        del session.commit
    session.commit()


@contextlib.contextmanager
def _quiet():
    # nbgrader's add_submission makes SQLAlchemy warn about autoflush on rows it then
    # writes correctly; the warnings would only alarm the instructor reading the terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=SAWarning)
        yield


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def _shown(db_url):
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the given URL"
