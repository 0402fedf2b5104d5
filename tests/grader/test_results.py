"""The results step: grades.csv, nbgrader's gradebook, and feedback without hidden tests.

Every write_results call runs two nbgrader subprocesses (generate_assignment and
generate_feedback, a few seconds each), so the module runs it three times in all: once
for the main batch, twice for the rerun.
"""

import copy
import csv
import html
import json
import re
from types import SimpleNamespace

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry, SubmittedAssignment

from grader.course.course import Course, run_nbgrader
from grader.intake.prepare import HIDDEN_TESTS, public_text
from grader.labs.c2_w2 import LAB as lab
from grader.publish import results
from grader.publish.results import (
    CSV_COLUMNS,
    FeedbackLeakError,
    ResultsError,
    move_feedback,
    write_results,
)
from grader.records import ERROR, GRADED, INVALID, TIMEOUT, ExerciseVerdict, SubmissionResult

# nbgrader's own Gradebook.add_submission builds its objects in a way SQLAlchemy 2 warns
# about; the rows are written all the same.
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

UNICODE_ID = "Zoë Ñúñez 学生"
SOURCE = nbformat.read(str(lab.source_notebook), as_version=4)


def verdict(exercise, points, *messages):
    return ExerciseVerdict(exercise, points, 50, messages)


def graded_notebook(verdicts):
    """The source notebook as the grader leaves it: test cells (hidden tests included)
    show the verdict messages as their only output."""
    notebook = copy.deepcopy(SOURCE)
    for cell in notebook.cells:
        exercise = cell.metadata.get("nbgrader", {}).get("grade_id", "").removesuffix("_test")
        if cell.metadata.get("nbgrader", {}).get("grade") and exercise in verdicts:
            found = verdicts[exercise]
            text = "\n".join([f"{exercise}: {found.points:g} / {found.max_points:g} points",
                              *found.messages]) + "\n"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return json.loads(nbformat.writes(notebook))  # plain JSON, as the grader passes it


def result(student_id, status, *verdicts, detail="", notebook=True):
    by_exercise = {found.exercise: found for found in verdicts}
    return SubmissionResult(student_id, status, detail=detail, verdicts=by_exercise,
                            notebook=graded_notebook(by_exercise) if notebook else None)


MAIN_BATCH = [
    result("alice", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50)),
    result("bob", GRADED, verdict("UNQ_C1", 50),
           verdict("UNQ_C2", 12.5, "Layer L2 has 10 units; expected 15.")),
    result(UNICODE_ID, GRADED, verdict("UNQ_C1", 25, "my_softmax does not add up to 1."),
           verdict("UNQ_C2", 50)),
    result("carol", TIMEOUT, verdict("UNQ_C1", 50), detail="UNQ_C2_test ran over 60 s"),
    result("dave", ERROR, verdict("UNQ_C1", 0, "my_softmax raised NameError."),
           detail="the kernel died"),
    result("erin", INVALID, detail="not a notebook: bad JSON", notebook=False),
]
EXPECTED_SCORES = {"alice": 100, "bob": 62.5, UNICODE_ID: 75, "carol": 50, "dave": 0,
                   "erin": 0}
WITH_NOTEBOOK = {"alice", "bob", UNICODE_ID, "carol", "dave"}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    path = tmp_path_factory.mktemp("results")
    return SimpleNamespace(path=path, summary=write_results(path, MAIN_BATCH))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_csv_has_exactly_the_columns_and_a_row_per_result(out):
    assert read_csv(out.path / "grades.csv") == [
        list(CSV_COLUMNS),
        [UNICODE_ID, "25", "50", "75", "100", "graded", ""],
        ["alice", "50", "50", "100", "100", "graded", ""],
        ["bob", "50", "12.5", "62.5", "100", "graded", ""],
        ["carol", "50", "0", "50", "100", "timeout", "UNQ_C2_test ran over 60 s"],
        ["dave", "0", "0", "0", "100", "error", "the kernel died"],
        ["erin", "0", "0", "0", "100", "invalid", "not a notebook: bad JSON"],
    ]
    assert CSV_COLUMNS == ("student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status",
                           "detail")
    assert not list(out.path.glob(".grades.csv.*")), "a temporary file was left behind"


def test_summary_counts_statuses_and_averages_scores(out):
    summary = out.summary
    assert summary.counts == {GRADED: 3, TIMEOUT: 1, ERROR: 1, INVALID: 1}
    assert summary.mean_score == pytest.approx(287.5 / 6)
    assert summary.missing_feedback == ()
    assert "6 submissions" in summary.describe()


def test_gradebook_holds_each_students_scores_out_of_100(out):
    with Gradebook(f"sqlite:///{out.path / 'gradebook.db'}", course_id="") as gradebook:
        assert gradebook.find_assignment(lab.assignment).max_score == 100
        assert {student.id for student in gradebook.students} == set(EXPECTED_SCORES)
        for student_id in WITH_NOTEBOOK:
            submission = gradebook.find_submission(lab.assignment, student_id)
            assert submission.score == EXPECTED_SCORES[student_id], student_id
            assert submission.max_score == 100
            assert not submission.needs_manual_grade
        bob_c2 = gradebook.find_grade("UNQ_C2_test", "C2_W2_Assignment", lab.assignment, "bob")
        assert (bob_c2.auto_score, bob_c2.max_score) == (12.5, 50)
        with pytest.raises(MissingEntry):
            gradebook.find_submission(lab.assignment, "erin")


def test_nbgrader_export_shows_the_same_scores(out, tmp_path):
    exported = tmp_path / "export.csv"
    run_nbgrader(Course(out.path / "nbgrader"), "export", "--to", str(exported))
    with open(exported, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert {row["student_id"]: float(row["score"]) for row in rows} == EXPECTED_SCORES
    assert {row["max_score"] for row in rows} == {"100.0"}


def test_graded_notebooks_are_where_formgrader_reads_them(out):
    autograded = out.path / "nbgrader" / "autograded"
    assert {path.name for path in autograded.iterdir()} == WITH_NOTEBOOK
    notebook = nbformat.read(str(autograded / UNICODE_ID / lab.assignment / lab.notebook_name),
                             as_version=4)
    assert "my_softmax does not add up to 1." in nbformat.writes(notebook)


def feedback_file(out, student_id):
    return out / "feedback" / student_id / "C2_W2_Assignment.html"


def shown_text(path):
    """The HTML's text as a reader sees it: tags (syntax highlighting splits code into
    spans) removed and entities decoded, so code is found as it was written."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def test_feedback_for_every_student_with_a_notebook_in_our_layout(out):
    assert {path.name for path in (out.path / "feedback").iterdir()} == WITH_NOTEBOOK
    for student_id in WITH_NOTEBOOK:
        assert feedback_file(out.path, student_id).is_file(), student_id
    assert not (out.path / "nbgrader" / "feedback").exists()


def test_feedback_shows_scores_and_verdict_messages(out):
    bob = shown_text(feedback_file(out.path, "bob"))
    assert "Score: 62.5 / 100.0" in bob
    assert "Score: 12.5 / 50.0" in bob
    assert "Layer L2 has 10 units; expected 15." in bob
    unicode_student = shown_text(feedback_file(out.path, UNICODE_ID))
    assert "Score: 75.0 / 100.0" in unicode_student
    assert "my_softmax does not add up to 1." in unicode_student


def hidden_test_lines():
    """Lines of the hidden regions that appear nowhere else in the notebook."""
    sources = [cell.source for cell in SOURCE.cells]
    visible = "\n".join(public_text(source) for source in sources)
    hidden = [line.strip() for source in sources
              for region in HIDDEN_TESTS.findall(source) for line in region.splitlines()]
    return {line for line in hidden if line and line not in visible}


def test_feedback_does_not_show_the_hidden_tests(out):
    lines = hidden_test_lines()
    assert len(lines) > 20, "the source notebook should have hidden tests"
    for student_id in WITH_NOTEBOOK:
        text = shown_text(feedback_file(out.path, student_id))
        assert "test_my_softmax(my_softmax)" in text  # the public test shows, as it should
        for leak in ("HIDDEN TESTS", "__GRADER_ANSWER__", "_grader_capture", "default_rng(2026"):
            assert leak not in text, (student_id, leak)
        assert not {line for line in lines if line in text}, student_id


def test_unsafe_or_duplicate_student_ids_are_refused_before_anything_is_written(tmp_path):
    for student_id in ("../escape", "a/b", "..", ""):
        with pytest.raises(ResultsError):
            write_results(tmp_path / "out", [result(student_id, INVALID, notebook=False)])
    twice = [result("amy", INVALID, notebook=False), result("amy", INVALID, notebook=False)]
    with pytest.raises(ResultsError):
        write_results(tmp_path / "out", twice)
    assert not (tmp_path / "out").exists()


def test_feedback_that_shows_hidden_tests_is_never_kept(tmp_path):
    made = tmp_path / "nbgrader_feedback" / "amy" / lab.assignment / "C2_W2_Assignment.html"
    made.parent.mkdir(parents=True)
    made.write_text("<pre>### BEGIN HIDDEN TESTS</pre>")
    with pytest.raises(FeedbackLeakError):
        move_feedback(tmp_path / "nbgrader_feedback", tmp_path / "feedback")
    assert not made.exists() and not (tmp_path / "feedback").exists()


# Rerunning on the same OUT, with the gradebook elsewhere (db_url)

def with_marker_cell(submission):
    # A cell the student added that mentions the hidden-test marker: ClearHiddenTests
    # refuses it, so nbgrader makes no feedback for this student and goes on.
    notebook = copy.deepcopy(submission.notebook)
    notebook["cells"].append(nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\n"))
    submission.notebook = notebook
    return submission


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    path = tmp_path_factory.mktemp("rerun")
    db_url = f"sqlite:///{tmp_path_factory.mktemp('elsewhere') / 'grades.db'}"
    write_results(path, [
        result("alice", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50)),
        result("bob", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50)),
        result("frank", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 0, "No model.")),
    ], db_url=db_url)
    summary = write_results(path, [
        result("alice", GRADED, verdict("UNQ_C1", 25, "Wrong sum."), verdict("UNQ_C2", 50)),
        result("bob", INVALID, detail="empty file", notebook=False),
        result("frank", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 0, "No model.")),
        with_marker_cell(result("hank", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50))),
    ], db_url=db_url)
    return SimpleNamespace(path=path, summary=summary, db_url=db_url)


def test_rerun_updates_scores_without_duplicating_anything(rerun):
    assert not (rerun.path / "gradebook.db").exists(), "db_url must be used instead"
    with Gradebook(rerun.db_url, course_id="") as gradebook:
        assert sorted(student.id for student in gradebook.students) == \
            ["alice", "bob", "frank", "hank"]
        submissions = gradebook.db.query(SubmittedAssignment).all()
        assert sorted(s.student.id for s in submissions) == ["alice", "frank", "hank"]
        assert gradebook.find_submission(lab.assignment, "alice").score == 75
        assert gradebook.find_submission(lab.assignment, "frank").score == 50
    assert [row[0] for row in read_csv(rerun.path / "grades.csv")[1:]] == \
        ["alice", "bob", "frank", "hank"]


def test_rerun_drops_the_notebook_and_feedback_of_a_now_invalid_student(rerun):
    assert not (rerun.path / "nbgrader" / "autograded" / "bob").exists()
    assert not (rerun.path / "feedback" / "bob").exists()
    assert "Wrong sum." in shown_text(feedback_file(rerun.path, "alice"))


def test_feedback_nbgrader_cannot_make_is_reported_and_the_rest_is_made(rerun):
    assert rerun.summary.missing_feedback == ("hank",)
    assert "hank" in rerun.summary.feedback_log
    assert not (rerun.path / "feedback" / "hank").exists()
    assert feedback_file(rerun.path, "frank").is_file()
    assert "No feedback for: hank" in rerun.summary.describe()


def test_results_are_readable_by_those_who_share_the_folder(tmp_path):
    # Written through a temporary file, which is private: the result must not stay so.
    path = tmp_path / "grades.csv"
    results.write_atomically(path, "student_id\n")
    assert path.stat().st_mode & 0o777 == 0o666 & ~results._umask()
    assert path.stat().st_mode & 0o044  # group and others may read (usual umask 022)
