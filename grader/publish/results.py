"""The results step: grades.csv, nbgrader's gradebook and each student's feedback.

Run only by the coordinating process, once per batch, after every submission is graded.
Layout of OUT:

    grades.csv                      one row per student, written atomically
    verdicts.json                   each student's points and verdict messages per exercise,
                                    which grades.csv has no column for (grader.publish.report)
    gradebook.db                    nbgrader's gradebook (unless another db_url is given)
    nbgrader/                       an nbgrader course on that gradebook: formgrader,
                                    `nbgrader export` and generate_feedback work in it
    nbgrader/autograded/<student>/C2_W2/C2_W2_Assignment.ipynb   the graded notebook
    feedback/<student>/C2_W2_Assignment.html                      what the student gets

In nbgrader's model a submission is a set of notebooks that formgrader and
generate_feedback read from autograded/. A student without a graded notebook (status
invalid) is therefore added as a student with no submission, which nbgrader's export and
formgrader already count as 0 points, instead of a submission whose notebook is missing.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SAWarning

from grader.course.course import COURSE_ID, NbgraderError, create_course, run_nbgrader
from grader.labs.c2_w2 import lab
from grader.records import STATUSES

MAX_SCORE = 100
VERDICTS_JSON = "verdicts.json"
CSV_COLUMNS = ("student_id", *lab.EXERCISES, "score", "max_score", "status", "detail")
NOTEBOOK_ID = Path(lab.NOTEBOOK_NAME).stem
FEEDBACK_NAME = f"{NOTEBOOK_ID}.html"
HIDDEN_TESTS_MARKER = "BEGIN HIDDEN TESTS"
# SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the driver installed
# (requirements.txt) is psycopg2, so such a URL is given that driver explicitly.
POSTGRESQL_DRIVER = "postgresql+psycopg2"

# Appended to the course's nbgrader_config.py. nbgrader 0.9's GenerateFeedback only runs
# GetGrades and CSSHTMLHeaderPreprocessor, so the hidden tests' source would be in the
# students' HTML (jupyter/nbgrader#917, #1363).
FEEDBACK_CONFIG = """
# Written by grader.publish.results: feedback must not show the hidden tests.
from nbgrader.converters import GenerateFeedback
from nbgrader.preprocessors import ClearHiddenTests

c.GenerateFeedback.preprocessors = [
    ClearHiddenTests, *GenerateFeedback.class_traits()["preprocessors"].default()
]
"""


class ResultsError(ValueError):
    """The results cannot be written as given (unsafe or duplicate student id, ...)."""


class FeedbackLeakError(RuntimeError):
    """nbgrader made feedback that still shows hidden tests; none of it was kept."""


@dataclass(frozen=True)
class ResultsSummary:
    counts: dict[str, int]  # number of students per status
    mean_score: float
    grades_csv: Path
    feedback_dir: Path
    missing_feedback: tuple[str, ...] = ()  # students with a notebook but no feedback
    feedback_log: str = ""  # the end of nbgrader's log when generate_feedback failed

    def describe(self):
        """A few lines for the command line."""
        total = sum(self.counts.values())
        counts = ", ".join(f"{count} {status}" for status, count in self.counts.items())
        lines = [f"{total} submissions: {counts}; mean score {self.mean_score:.1f} / {MAX_SCORE}",
                 f"Grades: {self.grades_csv}", f"Feedback: {self.feedback_dir}"]
        if self.missing_feedback:
            lines.append("No feedback for: " + ", ".join(self.missing_feedback))
            lines.append(self.feedback_log)
        return "\n".join(lines)


def open_results_course(out_dir, *, db_url=None):
    """The nbgrader course in `out_dir` with the assignment in its gradebook.

    Independent of the grades, so the caller may make it while grading goes on.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return create_results_course(out / "nbgrader", gradebook_url(out, db_url))


def gradebook_url(out, db_url):
    """The gradebook's SQLAlchemy URL: `db_url`, or sqlite in `out`."""
    if not db_url:
        return f"sqlite:///{Path(out).resolve() / 'gradebook.db'}"
    try:
        url = make_url(db_url)
    except ArgumentError as error:
        raise ResultsError(f"the gradebook URL {db_url!r} is not a database URL "
                           "(e.g. postgresql://user@host:5432/gradebook)") from error
    if url.drivername == "postgresql":
        url = url.set(drivername=POSTGRESQL_DRIVER)
    return url.render_as_string(hide_password=False)


def write_results(out_dir, results, *, db_url=None, course=None):
    """Write grades.csv, the gradebook and the feedback for `results` into `out_dir`;
    `course` is what open_results_course returned, if the caller made it already."""
    check_results(results)
    results = sorted(results, key=lambda result: result.student_id)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    grades_csv = write_grades_csv(out / "grades.csv", results)
    write_verdicts_json(out / VERDICTS_JSON, results)
    db_url = gradebook_url(out, db_url)
    course = course or open_results_course(out, db_url=db_url)
    record_in_gradebook(course, db_url, results)
    missing, log = write_feedback(course, out / "feedback", results)
    return ResultsSummary(counts=count_statuses(results), mean_score=mean_score(results),
                          grades_csv=grades_csv, feedback_dir=out / "feedback",
                          missing_feedback=missing, feedback_log=log)


def check_results(results):
    """Refuse, before anything is written, results that would clash or escape OUT."""
    seen = set()
    for result in results:
        if not is_safe_student_id(result.student_id):
            raise ResultsError(f"unsafe student id for a folder name: {result.student_id!r}")
        if result.student_id in seen:
            raise ResultsError(f"two results for student {result.student_id!r}")
        seen.add(result.student_id)
        if result.status not in STATUSES:
            raise ResultsError(f"unknown status {result.status!r} for {result.student_id!r}")
        unknown = set(result.verdicts) - set(lab.EXERCISES)
        if unknown:
            raise ResultsError(f"verdicts for unknown exercises {sorted(unknown)}")


def is_safe_student_id(student_id):
    # The id becomes a folder name under OUT: one path component, nothing more.
    return (bool(student_id) and student_id not in (".", "..")
            and not {"/", "\\", "\0"} & set(student_id))


# grades.csv

def write_grades_csv(path, results):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(grades_row(result) for result in results)
    write_atomically(path, buffer.getvalue())
    return path


def grades_row(result):
    points = [exercise_points(result, exercise) for exercise in lab.EXERCISES]
    return [result.student_id, *map(format_number, points), format_number(result.score),
            format_number(MAX_SCORE), result.status, result.detail]


def write_verdicts_json(path, results):
    """The verdicts behind the grades, so that the report can be rebuilt without grading."""
    verdicts = {result.student_id: {
        exercise: {"points": verdict.points, "max_points": verdict.max_points,
                   "messages": list(verdict.messages)}
        for exercise, verdict in sorted(result.verdicts.items())} for result in results}
    write_atomically(path, json.dumps(verdicts, indent=1, ensure_ascii=False) + "\n")
    return path


def exercise_points(result, exercise):
    verdict = result.verdicts.get(exercise)
    return verdict.points if verdict else 0


def format_number(value):
    # Whole numbers as integers (50, not 50.0), others without float noise (0.3).
    return f"{value:.10g}"


def write_atomically(path, text):
    """Replace `path` in one step: a reader sees the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     encoding="utf-8", newline="", delete=False) as temp:
        temp.write(text)
    # A temporary file is private (0600); the result gets the mode any new file would get
    # (the umask decides), so that a shared OUT stays readable by those who share it.
    os.chmod(temp.name, 0o666 & ~_umask())
    os.replace(temp.name, path)


def _umask():
    """The process's umask, read without setting it: os.umask would change it for every
    thread meanwhile."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022  # no /proc (macOS): the usual default


# The gradebook

def create_results_course(root, db_url):
    """The nbgrader course on the gradebook, with the assignment and its grade cells."""
    course = create_course(root, db_url=db_url, for_release=False)
    with open(course.root / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(FEEDBACK_CONFIG)
    # Run every time: it records the assignment if new and follows changes of the
    # source notebook (points, cells); with the same source it changes nothing.
    run_nbgrader(course, "generate_assignment", lab.ASSIGNMENT, "--force")
    return course


def record_in_gradebook(course, db_url, results):
    # nbgrader's add_submission makes SQLAlchemy warn about autoflush on rows it then
    # writes correctly; the warnings would only alarm the instructor reading the terminal.
    with warnings.catch_warnings(), Gradebook(db_url, course_id=COURSE_ID) as gradebook:
        warnings.simplefilter("ignore", category=SAWarning)
        for result in results:
            gradebook.update_or_create_student(result.student_id)
            if result.notebook is None:
                forget_submission(gradebook, course, result.student_id)
            else:
                record_submission(gradebook, result)
                write_atomically(autograded_notebook(course, result.student_id),
                                 nbformat.writes(nbformat.from_dict(result.notebook)))


def record_submission(gradebook, result):
    gradebook.update_or_create_submission(lab.ASSIGNMENT, result.student_id)
    for test_cell, exercise in lab.HIDDEN_TEST_CELLS.items():
        grade = gradebook.find_grade(test_cell, NOTEBOOK_ID, lab.ASSIGNMENT, result.student_id)
        grade.auto_score = float(exercise_points(result, exercise))
        # As nbgrader's autograde does: a score a grader gave by hand stays in force and
        # the cell is flagged for review; otherwise the automatic score is final.
        grade.needs_manual_grade = grade.manual_score is not None
    gradebook.db.commit()


def forget_submission(gradebook, course, student_id):
    """Drop what an earlier run recorded for a student who now has no notebook."""
    with contextlib.suppress(MissingEntry):
        gradebook.remove_submission(lab.ASSIGNMENT, student_id)
    assignment_dir = autograded_notebook(course, student_id).parent
    shutil.rmtree(assignment_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # the student's folder, unless it holds more
        assignment_dir.parent.rmdir()


def autograded_notebook(course, student_id):
    return course.root / "autograded" / student_id / lab.ASSIGNMENT / lab.NOTEBOOK_NAME


# Feedback

def write_feedback(course, feedback_dir, results):
    """Run generate_feedback once for the batch; return (students missing feedback, log)."""
    for result in results:
        # Old feedback must not outlive a new result, whether or not new feedback comes.
        shutil.rmtree(feedback_dir / result.student_id, ignore_errors=True)
    with_notebook = [result.student_id for result in results if result.notebook is not None]
    if not with_notebook:
        return (), ""
    log = ""
    nbgrader_feedback = course.root / "feedback"
    shutil.rmtree(nbgrader_feedback, ignore_errors=True)
    try:
        run_nbgrader(course, "generate_feedback", lab.ASSIGNMENT, "--force")
    except NbgraderError as error:
        # nbgrader goes on with the other students when one fails: keep what it made.
        log = str(error)
    move_feedback(nbgrader_feedback, feedback_dir)
    missing = tuple(student for student in with_notebook
                    if not (feedback_dir / student / FEEDBACK_NAME).exists())
    return missing, log


def move_feedback(nbgrader_feedback, feedback_dir):
    """Move feedback/<student>/C2_W2/X.html to our feedback/<student>/X.html."""
    made = sorted(nbgrader_feedback.glob(f"*/{lab.ASSIGNMENT}/{FEEDBACK_NAME}"))
    leaking = [path for path in made if HIDDEN_TESTS_MARKER in path.read_text("utf-8")]
    if leaking:
        # nbgrader ignores a broken config and goes on with its defaults: check, not trust.
        shutil.rmtree(nbgrader_feedback)
        raise FeedbackLeakError(f"feedback shows hidden tests, e.g. {leaking[0]}")
    for path in made:
        destination = feedback_dir / path.parents[1].name / FEEDBACK_NAME
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, destination)
    shutil.rmtree(nbgrader_feedback, ignore_errors=True)


# Summary

def count_statuses(results):
    return {status: sum(result.status == status for result in results) for status in STATUSES}


def mean_score(results):
    return sum(result.score for result in results) / len(results) if results else 0.0
