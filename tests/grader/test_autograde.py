"""`python -m grader autograde`, end to end on the corpus, against the golden grades; and
what a batch does to an OUT that already holds a class (resume, add, regrade): the
students added to it run on recorded outcomes (grader.run.runner.CannedRunner), since
what is tested is OUT, not their kernels."""

import base64
import binascii
import csv
import html
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import corpus
import nbformat
import pytest

from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import autograde
from grader.records import KernelProtection, RunEnd, RunOutcome, unreached
from grader.run.runner import CannedRunner
from grader.run.sandbox import kernels_sandbox

CSV_COLUMNS = ["student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status", "detail",
               "timestamp", "late_seconds", "penalty", "final_score"]
# A few submissions graded again into another OUT, from a zip: the same rows must come back.
RECHECKED = ["ok-loop-softmax-input-model", "wrong-softmax-unnormalised",
             "wrong-model-softmax-output", "invalid-truncated"]


def _autograde(submissions, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--cell-timeout", "10", *extra],
        capture_output=True, text=True, cwd=lab.root, timeout=900)


def _rows(out):
    """grades.csv by student id (a neutralised formula id read back without its quote)."""
    with (out / "grades.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == CSV_COLUMNS
        return {row["student_id"].removeprefix("'"): row for row in reader}


def test_every_student_folder_is_one_row_with_the_golden_grade(graded):
    out, _ = graded
    rows, expected = _rows(out), corpus.expected_grades()
    assert sorted(rows) == sorted(expected)
    for student, want in expected.items():
        got = rows[student]
        assert [got[k] for k in CSV_COLUMNS[1:6]] == [want[k] for k in CSV_COLUMNS[1:6]], student
        assert want["detail_contains"] in got["detail"], student


def test_a_formula_id_is_written_as_text(graded):
    out, _ = graded
    raw = (out / "grades.csv").read_text(encoding="utf-8")
    assert f"\n'{corpus.FORMULA_STUDENT}," in raw
    assert f"\n{corpus.FORMULA_STUDENT}," not in raw


def test_summary_counts_statuses_and_mean(graded):
    _, result = graded
    expected = corpus.expected_grades().values()
    mean = sum(float(row["score"]) for row in expected) / len(expected)
    counts = (f"graded {sum(r['status'] == 'graded' for r in expected)}, timeout 0, error 0, "
              f"invalid {sum(r['status'] == 'invalid' for r in expected)}")
    assert f"Graded {len(expected)} submissions in " in result.stdout
    assert f"OUT holds {len(expected)} students: {counts}; mean score {mean:.1f}/100" in \
        result.stdout
    assert "Traceback" not in result.stderr


def _feedback(out, student):
    return (out / "feedback" / student / lab.notebook_name.replace(".ipynb", ".html")).read_text()


def _text(page):
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _decoded_runs(page):
    """Everything base64-encoded in the page, decoded (figures and anything printed so)."""
    for run in re.findall(r"[A-Za-z0-9+/=\n]{40,}", page):
        try:
            yield base64.b64decode("".join(run.split()) + "==").decode("utf-8", "ignore")
        except (binascii.Error, ValueError):
            continue


def test_feedback_names_each_mistake(graded):
    out, _ = graded
    for student, want in corpus.expected_grades().items():
        if want["status"] == "invalid":
            assert not (out / "feedback" / student).exists()
            continue
        assert want["feedback_contains"] in _text(_feedback(out, student)), student


def test_no_feedback_shows_hidden_test_source_not_even_base64_encoded(graded):
    out, _ = graded
    lines = lab.hidden_source_lines()
    printed_notebook = _feedback(out, "ok-prints-own-notebook-base64")
    assert "test_my_softmax(my_softmax)" in "".join(_decoded_runs(printed_notebook))
    for path in (out / "feedback").glob("*/*.html"):
        page = path.read_text()
        for haystack in (page, _text(page), *_decoded_runs(page)):
            assert not [line for line in lines if line in haystack], path


def test_a_students_script_is_inert_in_the_feedback(graded):
    out, _ = graded
    page = _feedback(out, "ok-shows-a-script")
    assert "<b>bold</b>" in page  # the output's harmless part shows
    # A feedback page has no script at all (its formulas are drawn when it is built).
    assert re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL) == []


def test_the_graded_notebooks_and_kernels_hold_no_hidden_tests(graded):
    out, _ = graded
    for path in (out / "nbgrader" / "autograded").glob(f"*/{lab.assignment}/*.ipynb"):
        text = path.read_text()
        assert not [line for line in lab.hidden_source_lines() if line in text], path


def test_nbgrader_export_reads_the_same_scores(graded):
    out, _ = graded
    exported = out.parent / "export.csv"
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(exported)],
                   cwd=out / "nbgrader", check=True, capture_output=True,
                   # as an instructor would: without the grader on the Python path
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    with exported.open(newline="") as file:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)}
    for student, row in _rows(out).items():
        # Students without a readable notebook have no submission, so nbgrader counts 0.
        assert scores.get(student, 0.0) == float(row["score"]), student


def test_the_log_holds_grader_side_tracebacks_only(graded):
    out, _ = graded
    log = (out / "grader.log").read_text()
    assert "Traceback" not in log  # nothing of ours failed on the corpus


def test_from_a_zip_into_another_out_gives_the_same_rows(graded, class_dir, tmp_path):
    out, _ = graded
    archive = tmp_path / "some.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for student in RECHECKED:
            for path in (class_dir / student).rglob("*"):
                zipped.write(path, f"submissions/{path.relative_to(class_dir)}")
    again = tmp_path / "again"
    result = _autograde(archive, again, "--workers", "1")
    assert result.returncode == 0, result.stderr
    before = _rows(out)
    assert _rows(again) == {student: before[student] for student in RECHECKED}


# --- A batch on an OUT that holds a class ---------------------------------------------------

@pytest.fixture
def graded_copy(graded, tmp_path):
    """A copy of the corpus's OUT, to grade more into."""
    out, _ = graded
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    return copy


def _gradebook_students(out):
    with sqlite3.connect(out / "gradebook.db") as db:
        students = {row[0] for row in db.execute("SELECT id FROM student")}
        submitted = [row[0] for row in db.execute("SELECT student_id FROM submitted_assignment")]
    return students, submitted


def test_the_same_batch_again_keeps_every_result_and_grades_nobody(graded, graded_copy,
                                                                   class_dir):
    out, _ = graded
    before = (graded_copy / "grades.csv").read_text()
    result = _autograde(class_dir, graded_copy, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "Graded 0 submissions" in result.stdout
    assert f"kept {len(corpus.expected_grades())} unchanged results" in result.stdout
    assert (graded_copy / "grades.csv").read_text() == before


def _recorded(student_id):
    """A runner that gives `student_id` a recorded run that captured no answer: what is
    tested here is what a batch does to OUT, which no kernel changes."""
    ended = RunOutcome({exercise.id: unreached(exercise.id, RunEnd.FINISHED)
                        for exercise in lab.exercises}, RunEnd.FINISHED,
                       protection=KernelProtection(namespaces=True, cgroups=True))
    return CannedRunner({student_id: ended})


@pytest.mark.usefixtures("copy_results_course")
def test_a_late_student_is_added_and_the_class_kept_in_every_output(graded_copy, released_lab,
                                                                     tmp_path):
    late = tmp_path / "late"
    release = nbformat.read(str(released_lab / lab.notebook_name), as_version=4)
    path = late / "zz-late-student" / lab.notebook_name
    path.parent.mkdir(parents=True)
    nbformat.write(corpus.answered(release, "a = np.exp(z)", corpus.MODEL), str(path))
    class_rows = _rows(graded_copy)
    batch = autograde(submissions=late, out=graded_copy, lab=lab, workers=1,
                      runner=_recorded("zz-late-student"))
    rows = _rows(graded_copy)
    assert batch.graded == ["zz-late-student"] and rows["zz-late-student"]["score"] == "0"
    assert {student: rows[student] for student in class_rows} == class_rows
    verdicts = json.loads((graded_copy / "verdicts.json").read_text())
    assert set(verdicts) == set(rows)
    report = (graded_copy / "report.html").read_text()
    assert f'data-count="{len(rows)}"' in report
    students, submitted = _gradebook_students(graded_copy)
    assert students == set(rows) and len(submitted) == len(set(submitted))
    assert any(warning.startswith(f"{len(class_rows)} student(s) in the output have no "
                                  "folder in these submissions") for warning in batch.warnings)


@pytest.mark.usefixtures("copy_results_course")
def test_a_changed_submission_is_graded_again(graded_copy, class_dir, released_lab, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(class_dir / "wrong-softmax-unnormalised",
                    changed / "wrong-softmax-unnormalised")
    release = nbformat.read(str(released_lab / lab.notebook_name), as_version=4)
    nbformat.write(corpus.answered(release, corpus.STABLE, corpus.MODEL),
                   str(changed / "wrong-softmax-unnormalised" / lab.notebook_name))
    shutil.copytree(class_dir / "wrong-model-units", changed / "wrong-model-units")
    before = _rows(graded_copy)
    batch = autograde(submissions=changed, out=graded_copy, lab=lab, workers=1,
                      runner=_recorded("wrong-softmax-unnormalised"))
    assert batch.graded == ["wrong-softmax-unnormalised"]
    assert batch.kept == ["wrong-model-units"]
    rows = _rows(graded_copy)
    assert rows["wrong-softmax-unnormalised"]["score"] == "0"  # its recorded run: graded again
    assert rows["wrong-model-units"] == before["wrong-model-units"]


def test_a_secret_key_too_short_to_be_secret_is_refused(graded_copy, class_dir):
    result = _autograde(class_dir, graded_copy, "--secret-key", "5ec2e7")
    assert result.returncode == 2 and "at least 16 bytes" in result.stderr
    assert "Traceback" not in result.stderr


# --- Errors a batch must say clearly --------------------------------------------------------

def test_a_missing_submissions_folder_is_a_clear_error(tmp_path):
    result = _autograde(tmp_path / "nowhere", tmp_path / "out")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_gradebook_that_cannot_be_reached_stops_the_batch_before_grading(class_dir,
                                                                          tmp_path):
    result = _autograde(class_dir, tmp_path / "out", "--db",
                        "postgresql://nobody@127.0.0.1:9/gradebook")
    assert result.returncode == 1
    assert "cannot use the gradebook" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_a_folder_without_students_writes_an_empty_grade_sheet(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _autograde(tmp_path / "empty", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert _rows(tmp_path / "out") == {}


def test_the_run_says_what_confined_the_kernels_as_their_machines_said():
    assert kernels_sandbox([]) == ""
    assert kernels_sandbox(["namespaces+cgroups"] * 3) == "namespaces+cgroups"
    assert kernels_sandbox(["namespaces+cgroups", "cgroups", "cgroups", ""]) == \
        "cgroups (2 submissions), namespaces+cgroups (1 submission)"
