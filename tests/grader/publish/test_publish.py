"""The publish stage (grader/publish): each student's graded notebook, feedback, journal row
and gradebook row as results arrive, and grades.csv, verdicts.json from the journal.

Results are made by hand here (the pipeline's tests grade real notebooks); they go
through the same Publisher the pipeline uses, into a real nbgrader course and gradebook,
made by nbgrader once per session and copied for each OUT.
"""

import base64
import copy
import csv
import html
import json
import os
import re
from concurrent.futures import Future

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry, SubmittedAssignment

from grader import cells, pipeline
from grader.course.course import run_nbgrader
from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import publish_again, write_class_files
from grader.publish import files, grades_csv
from grader.publish.gradebook import (
    GradebookError,
    check_gradebook,
    gradebook_url,
    open_results_course,
    results_course,
)
from grader.publish.grades_csv import csv_columns, neutralised
from grader.publish.journal import Journal, JournalError, StudentRecord
from grader.publish.publisher import Publisher
from grader.records import ERROR, GRADED, INVALID, TIMEOUT, ExerciseVerdict, Message, StudentResult

# nbgrader's own Gradebook.add_submission builds its objects in a way SQLAlchemy 2 warns
# about; the rows are written all the same.
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

UNICODE_ID = "Zoë Ñúñez 学生"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
       "RU5ErkJggg==")


def verdict(exercise, points, *texts):
    return ExerciseVerdict(exercise, points, 50, tuple(Message("test.kind", text)
                                                       for text in texts))


def graded_notebook(extra_outputs=()):
    """The source notebook as a run leaves it: public test cells, outputs in one cell."""
    notebook = copy.deepcopy(lab.source)
    for cell in notebook.cells:
        if cells.is_test_cell(cell):
            cell.source = cells.public_text(cell.source)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    first_code.outputs = list(extra_outputs)
    return json.loads(nbformat.writes(notebook))


def result(student_id, status, *verdicts, detail="", notebook=True, outputs=()):
    return StudentResult(student_id, status, detail,
                         {found.exercise: found for found in verdicts},
                         graded_notebook(outputs) if notebook else None,
                         submission_hash=f"digest-of-{student_id}")


def publish(out, results, *, db=None, batch=1, course_ready=True):
    db_url = gradebook_url(out, db)
    ready = Future()
    if course_ready:
        ready.set_result(open_results_course(out, lab, db_url))
    else:
        ready.set_exception(GradebookError("the database went away"))
    with Journal(out) as journal:
        with Publisher(out=out, lab=lab, journal=journal, course=results_course(out, lab),
                       gradebook_ready=ready, db_url=db_url, version="v1",
                       batch=batch) as publisher:
            for one in results:
                publisher.publish(one)
        write_class_files(out, journal, lab)
        return journal.records(), publisher.gradebook_problem


SCRIPT_OUTPUT = nbformat.v4.new_output("display_data", data={
    "text/html": "<table><tr><th>a</th></tr><tr><td>1</td></tr></table>"
                 "<script>alert('xss')</script><img src=x onerror=alert(2)>"
                 "<iframe src='https://example.org'></iframe>",
    "application/javascript": "alert('js')", "image/svg+xml": "<svg onload=alert(3)/>",
    "text/plain": "a table"})
FIGURE_OUTPUT = nbformat.v4.new_output("display_data", data={"image/png": PNG,
                                                             "text/plain": "figure"})
MAIN_BATCH = [
    result("alice", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50),
           outputs=[SCRIPT_OUTPUT, FIGURE_OUTPUT]),
    result("bob", GRADED, verdict("UNQ_C1", 50),
           verdict("UNQ_C2", 12.5, "Layer L2 has 10 units; expected 15.")),
    result(UNICODE_ID, GRADED, verdict("UNQ_C1", 25, "my_softmax does not add up to 1."),
           verdict("UNQ_C2", 50)),
    result("carol", TIMEOUT, verdict("UNQ_C1", 50), verdict("UNQ_C2", 0),
           detail="UNQ_C2_test ran over 60 s"),
    result("dave", ERROR, verdict("UNQ_C1", 0, "my_softmax raised NameError."),
           verdict("UNQ_C2", 0), detail="the kernel died"),
    result("erin", INVALID, detail="not a notebook: bad JSON", notebook=False),
    result("=HYPERLINK(\"evil\")", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50),
           detail="-2+3 is a formula too"),
]
FORMULA_ID = MAIN_BATCH[-1].student_id
EXPECTED_SCORES = {"alice": 100, "bob": 62.5, UNICODE_ID: 75, "carol": 50, "dave": 0,
                   "erin": 0, FORMULA_ID: 100}
WITH_NOTEBOOK = {"alice", "bob", UNICODE_ID, "carol", "dave", FORMULA_ID}


@pytest.fixture(scope="module", autouse=True)
def _course_copied(results_course_copier):
    """Every OUT's nbgrader course copied from the session's (tests/grader/conftest.py):
    nbgrader's generate step, seconds in a subprocess, runs once, not once per publish."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(globals(), "open_results_course", results_course_copier)
        patch.setattr(pipeline, "open_results_course", results_course_copier)
        yield


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    path = tmp_path_factory.mktemp("publish")
    records, problem = publish(path, copy.deepcopy(MAIN_BATCH))
    assert problem is None
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def feedback_file(out, student_id):
    return out / "feedback" / student_id / "C2_W2_Assignment.html"


def shown_text(path):
    """The HTML's text as a reader sees it: tags (syntax highlighting splits code into
    spans) removed and entities decoded, so code is found as it was written."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


# --- grades.csv and verdicts.json -----------------------------------------------------------

def test_csv_has_exactly_the_columns_and_a_row_per_student(out):
    # No timestamp and no due date: never late, nothing off, the final score is the score.
    rows = read_csv(out / "grades.csv")
    assert [row[-4:] for row in rows[1:]] == [["", "0", "0", row[3]] for row in rows[1:]]
    assert [row[:-4] for row in rows] == [
        list(csv_columns(lab))[:-4],
        ["'" + FORMULA_ID, "50", "50", "100", "100", "graded", "'-2+3 is a formula too"],
        [UNICODE_ID, "25", "50", "75", "100", "graded", ""],
        ["alice", "50", "50", "100", "100", "graded", ""],
        ["bob", "50", "12.5", "62.5", "100", "graded", ""],
        ["carol", "50", "0", "50", "100", "timeout", "UNQ_C2_test ran over 60 s"],
        ["dave", "0", "0", "0", "100", "error", "the kernel died"],
        ["erin", "0", "0", "0", "100", "invalid", "not a notebook: bad JSON"],
    ]
    assert not list(out.glob(".grades.csv.*")), "a temporary file was left behind"


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_a_spreadsheet_would_run_is_neutralised(text):
    assert neutralised(text) == "'" + text
    assert neutralised("alice") == "alice" and neutralised("a=b") == "a=b"


def test_verdicts_json_holds_every_message_with_its_kind(out):
    data = json.loads((out / "verdicts.json").read_text(encoding="utf-8"))
    assert set(data) == set(EXPECTED_SCORES)
    assert data["bob"]["verdicts"]["UNQ_C2"]["messages"] == [
        {"kind": "test.kind", "text": "Layer L2 has 10 units; expected 15."}]
    assert data["bob"]["feedback"] == "written" and data["erin"]["feedback"] == "none"


# --- The gradebook and nbgrader's own tools -------------------------------------------------

def test_gradebook_holds_each_students_scores(out):
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", course_id=lab.course_id) as gradebook:
        assert gradebook.find_assignment(lab.assignment).max_score == 100
        assert {student.id for student in gradebook.students} == set(EXPECTED_SCORES)
        for student_id in WITH_NOTEBOOK:
            submission = gradebook.find_submission(lab.assignment, student_id)
            assert submission.score == EXPECTED_SCORES[student_id], student_id
            assert not submission.needs_manual_grade
        bob_c2 = gradebook.find_grade("UNQ_C2_test", "C2_W2_Assignment", lab.assignment, "bob")
        assert (bob_c2.auto_score, bob_c2.max_score) == (12.5, 50)
        with pytest.raises(MissingEntry):
            gradebook.find_submission(lab.assignment, "erin")
    with Journal(out) as journal:
        assert all(record.in_gradebook for record in journal.records())


def test_nbgrader_export_shows_the_same_scores(out, tmp_path):
    exported = tmp_path / "export.csv"
    run_nbgrader(results_course(out, lab), "export", "--to", str(exported))
    with open(exported, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert {row["student_id"]: float(row["score"]) for row in rows} == EXPECTED_SCORES


def test_graded_notebooks_are_where_formgrader_reads_them(out):
    autograded = out / "nbgrader" / "autograded"
    assert {path.name for path in autograded.iterdir()} == WITH_NOTEBOOK
    notebook = nbformat.read(str(autograded / UNICODE_ID / lab.assignment / lab.notebook_name),
                             as_version=4)
    assert "my_softmax does not add up to 1." in nbformat.writes(notebook)


# --- Feedback -------------------------------------------------------------------------------

def test_feedback_for_every_student_with_a_notebook(out):
    assert {path.name for path in (out / "feedback").iterdir()} == WITH_NOTEBOOK
    # The course's copies, with the files `nbgrader release_feedback` reads beside each.
    course_feedback = out / "nbgrader" / "feedback"
    assert {path.name for path in course_feedback.iterdir()} == WITH_NOTEBOOK
    for student in WITH_NOTEBOOK:
        folder = course_feedback / student / lab.assignment
        assert {path.name for path in folder.iterdir()} == {
            "C2_W2_Assignment.html", "timestamp.txt", "submission_secret.txt"}


def test_feedback_shows_scores_and_verdict_messages(out):
    bob = shown_text(feedback_file(out, "bob"))
    assert "Score: 62.5 / 100.0" in bob and "Score: 12.5 / 50.0" in bob
    assert "Layer L2 has 10 units; expected 15." in bob
    assert "Score: 75.0 / 100.0" in shown_text(feedback_file(out, UNICODE_ID))


def test_feedback_shows_no_hidden_test(out):
    lines = lab.hidden_source_lines()
    assert len(lines) > 20
    for student_id in WITH_NOTEBOOK:
        text = shown_text(feedback_file(out, student_id))
        assert "test_my_softmax(my_softmax)" in text  # the public test shows, as it should
        assert "HIDDEN TESTS" not in text and "_hidden_test" not in text
        assert not {line for line in lines if line in text}, student_id


def test_a_students_active_content_is_inert_and_figures_and_tables_stay(out):
    page = feedback_file(out, "alice").read_text(encoding="utf-8")
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL)
    assert not [script for script in scripts if "alert" in script]
    assert not re.search(r"<[^>]+\son\w+\s*=", page)  # no event handler in any tag
    assert "<iframe" not in page and "<svg" not in page
    assert f"data:image/png;base64,{PNG}" in page
    assert "<table>" in page and "<th>a</th>" in page


def test_the_pages_are_the_same_each_time_the_same_result_is_published(out, tmp_path):
    publish(tmp_path, copy.deepcopy(MAIN_BATCH))
    for student_id in WITH_NOTEBOOK:
        assert feedback_file(tmp_path, student_id).read_bytes() == \
            feedback_file(out, student_id).read_bytes()


def _hidden_printout(encoded):
    source = "".join(cells.hidden_text(cell.source) for cell in lab.source.cells)
    text = base64.b64encode(source.encode()).decode() if encoded else source
    return nbformat.v4.new_output("stream", name="stdout", text=text)


@pytest.mark.parametrize("encoded", [False, True])
def test_feedback_that_would_show_hidden_tests_is_refused_for_that_student_only(
        tmp_path, encoded):
    records, _ = publish(tmp_path, [
        result("leaky", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50),
               outputs=[_hidden_printout(encoded)]),
        result("marker-only", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50),
               outputs=[nbformat.v4.new_output("stream", name="stdout",
                                               text="### BEGIN HIDDEN TESTS\n")]),
        result("honest", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50))])
    by_id = {record.student_id: record for record in records}
    assert by_id["leaky"].feedback == "refused" and by_id["leaky"].status == GRADED
    assert "hidden tests' code" in by_id["leaky"].detail and by_id["leaky"].score == 100
    assert not feedback_file(tmp_path, "leaky").exists()
    assert feedback_file(tmp_path, "honest").is_file()
    assert feedback_file(tmp_path, "marker-only").is_file()  # a marker alone is no source


def test_a_fault_while_publishing_one_student_costs_only_that_student(tmp_path, monkeypatch):
    from grader.publish import feedback

    original = feedback.FeedbackWriter.render

    def broken_for_bob(self, result, notebook, *late_penalty):
        if result.student_id == "bob":
            raise RuntimeError("a bug of ours")
        return original(self, result, notebook, *late_penalty)

    monkeypatch.setattr(feedback.FeedbackWriter, "render", broken_for_bob)
    records, _ = publish(tmp_path, copy.deepcopy(MAIN_BATCH[:3]))
    by_id = {record.student_id: record for record in records}
    assert by_id["bob"].status == GRADED and by_id["bob"].score == 62.5
    assert "No feedback page could be made" in by_id["bob"].detail
    assert not feedback_file(tmp_path, "bob").exists()
    assert feedback_file(tmp_path, "alice").is_file()


# --- Later batches add to OUT ---------------------------------------------------------------

@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    path = tmp_path_factory.mktemp("rerun")
    db_url = f"sqlite:///{tmp_path_factory.mktemp('elsewhere') / 'grades.db'}"
    publish(path, [
        result("alice", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50)),
        result("bob", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50)),
        result("frank", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 0, "No model.")),
    ], db=db_url)
    records, _ = publish(path, [
        result("alice", GRADED, verdict("UNQ_C1", 25, "Wrong sum."), verdict("UNQ_C2", 50)),
        result("bob", INVALID, detail="empty file", notebook=False),
        result("hank", GRADED, verdict("UNQ_C1", 50), verdict("UNQ_C2", 50)),
    ], db=db_url, batch=2)
    return path, db_url, records


def test_a_later_batch_updates_its_students_and_keeps_the_others(rerun):
    path, db_url, records = rerun
    assert not (path / "gradebook.db").exists(), "db_url must be used instead"
    assert [row[0] for row in read_csv(path / "grades.csv")[1:]] == \
        ["alice", "bob", "frank", "hank"]
    with Gradebook(db_url, course_id=lab.course_id) as gradebook:
        assert sorted(student.id for student in gradebook.students) == \
            ["alice", "bob", "frank", "hank"]
        submissions = gradebook.db.query(SubmittedAssignment).all()
        assert sorted(s.student.id for s in submissions) == ["alice", "frank", "hank"]
        assert gradebook.find_submission(lab.assignment, "alice").score == 75
        assert gradebook.find_submission(lab.assignment, "frank").score == 50
    assert {record.student_id: record.batch for record in records} == \
        {"alice": 2, "bob": 2, "frank": 1, "hank": 2}


def test_a_now_invalid_student_loses_the_notebook_and_feedback(rerun):
    path, _, _ = rerun
    assert not (path / "nbgrader" / "autograded" / "bob").exists()
    assert not (path / "feedback" / "bob").exists()
    assert "Wrong sum." in shown_text(feedback_file(path, "alice"))


# --- A gradebook that fails -----------------------------------------------------------------

def test_an_unreachable_gradebook_is_refused_before_anything_is_graded():
    with pytest.raises(GradebookError, match="cannot use the gradebook"):
        check_gradebook("postgresql+psycopg2://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_a_gradebook_that_fails_later_keeps_the_rows_for_publish(tmp_path):
    records, problem = publish(tmp_path, copy.deepcopy(MAIN_BATCH[:2]), course_ready=False)
    assert "the database went away" in problem
    assert [record.in_gradebook for record in records] == [False, False]
    assert (tmp_path / "grades.csv").is_file() and feedback_file(tmp_path, "bob").is_file()
    records, problem = publish_again(out=tmp_path, lab=lab)
    assert problem is None and all(record.in_gradebook for record in records)
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", course_id=lab.course_id) as book:
        assert book.find_submission(lab.assignment, "bob").score == 62.5


# --- The journal ----------------------------------------------------------------------------

def test_an_id_that_is_not_one_folder_is_never_a_path(tmp_path):
    records, _ = publish(tmp_path, [result("../escape", GRADED, verdict("UNQ_C1", 50)),
                                    result("alice", GRADED, verdict("UNQ_C1", 50))])
    by_id = {record.student_id: record for record in records}
    assert by_id["../escape"].status == ERROR and "cannot name a folder" in \
        by_id["../escape"].detail
    assert not (tmp_path.parent / "escape").exists()
    assert feedback_file(tmp_path, "alice").is_file()


def test_the_journal_counts_batches_and_refuses_another_lab(tmp_path):
    with Journal(tmp_path) as journal:
        assert journal.begin_batch(lab=lab) == 1
        assert journal.begin_batch(lab=lab, regrade=True) == 2
        other = type("Other", (), {"assignment": "C9"})()
        with pytest.raises(JournalError, match="not of C9"):
            journal.begin_batch(lab=other)


def test_the_journal_stores_what_a_kernel_may_have_made_unencodable(tmp_path):
    weird = result("amy", GRADED, verdict("UNQ_C1", 0, "bad \ud800 surrogate"),
                   detail="lone \udcff here", notebook=False)
    with Journal(tmp_path) as journal:
        journal.record(weird, version="v", batch=1, has_notebook=False, feedback="none")
        (record,) = journal.records()
    assert record.detail == "lone ? here"
    assert record.verdicts["UNQ_C1"].messages[0].text == "bad \ud800 surrogate"
    files.write_atomically(tmp_path / "x.txt", record.verdicts["UNQ_C1"].messages[0].text)


def test_results_are_readable_by_those_who_share_the_folder(tmp_path):
    # Written through a temporary file, which is private: the result must not stay so.
    path = tmp_path / "grades.csv"
    files.write_atomically(path, "student_id\n")
    files.write_atomically(tmp_path / "page.html", "<p>", durable=False)
    umask = os.umask(0o022)  # read back at once: nothing else in this test writes files
    os.umask(umask)
    for written in (path, tmp_path / "page.html"):
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(item.name for item in tmp_path.iterdir()) == ["grades.csv", "page.html"]


def test_a_class_file_written_a_row_at_a_time_replaces_the_old_one_only_when_whole(tmp_path):
    path = tmp_path / "grades.csv"
    files.write_atomically(path, "the old grades\n")
    with pytest.raises(RuntimeError), files.atomic_text_file(path) as file:
        file.write("student_id\nann,1\n")
        raise RuntimeError("the journal could not be read further")
    assert path.read_text() == "the old grades\n"
    with files.atomic_text_file(path) as file:
        file.write("student_id\r\nbad \ud800 surrogate\n")  # as written, unencodable replaced
    assert path.read_bytes() == b"student_id\r\nbad ? surrogate\n"
    assert [item.name for item in tmp_path.iterdir()] == ["grades.csv"]  # no temporary left


@pytest.mark.parametrize("count", [0, 1, 3])
def test_verdicts_json_is_one_student_a_line_for_any_class(tmp_path, count):
    records = [StudentRecord(f"s{number}", GRADED, verdicts={
        "UNQ_C1": ExerciseVerdict("UNQ_C1", 1.0, 1.0)}) for number in range(count)]
    grades_csv.write_verdicts_json(tmp_path / "verdicts.json", iter(records))
    text = (tmp_path / "verdicts.json").read_text()
    assert list(json.loads(text)) == [record.student_id for record in records]
    assert len(text.splitlines()) == count + 2 if count else text == "{}\n"
