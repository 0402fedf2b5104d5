"""`python -m grader autograde`, end to end on the corpus, against the golden grades."""

import csv
import html
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import corpus

from grader.labs.c2_w2 import LAB as lab
from grader.pipeline import kernels_sandbox
from grader.records import SubmissionResult

CSV_COLUMNS = ["student_id", "UNQ_C1", "UNQ_C2", "score", "max_score", "status", "detail"]
# A few submissions graded again one at a time, from a zip: the same rows must come back.
RECHECKED = ["ok-loop-softmax-input-model", "wrong-softmax-unnormalised",
             "wrong-model-softmax-output", "invalid-truncated"]


def _autograde(submissions, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
         "--cell-timeout", "10", *extra],
        capture_output=True, text=True, cwd=lab.root, timeout=900)


def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == CSV_COLUMNS
        return {row["student_id"]: row for row in reader}


def test_every_student_folder_is_one_row_with_the_golden_grade(graded):
    out, _ = graded
    rows, expected = _rows(out), corpus.expected_grades()
    assert sorted(rows) == sorted(expected)
    for student, want in expected.items():
        got = rows[student]
        assert [got[k] for k in CSV_COLUMNS[1:6]] == [want[k] for k in CSV_COLUMNS[1:6]], student
        assert want["detail_contains"] in got["detail"], student


def test_summary_counts_statuses_and_mean(graded):
    _, result = graded
    expected = corpus.expected_grades().values()
    mean = sum(float(row["score"]) for row in expected) / len(expected)
    assert (f"graded {sum(r['status'] == 'graded' for r in expected)}, timeout 0, error 0, "
            f"invalid {sum(r['status'] == 'invalid' for r in expected)}; "
            f"mean score {mean:.1f}/100") in result.stdout


def _feedback_text(out, student):
    page = (out / "feedback" / student / lab.notebook_name.replace(".ipynb", ".html")).read_text()
    return page, html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_feedback_names_each_mistake_and_hides_the_hidden_tests(graded):
    out, _ = graded
    for student, want in corpus.expected_grades().items():
        if want["status"] == "invalid":
            assert not (out / "feedback" / student).exists()
            continue
        page, text = _feedback_text(out, student)
        assert want["feedback_contains"] in " ".join(text.split()), student
        for secret in ("HIDDEN TESTS", "__GRADER_ANSWER__", "_grader_capture", "default_rng(2026"):
            assert secret not in page, (student, secret)


def test_nbgrader_export_reads_the_same_scores(graded):
    out, _ = graded
    exported = out / "export.csv"
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(exported)],
                   cwd=out / "nbgrader", check=True, capture_output=True,
                   # as an instructor would: without the grader on the Python path
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    with exported.open(newline="") as file:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)}
    for student, row in _rows(out).items():
        # Students without a readable notebook have no submission, so nbgrader counts 0.
        assert scores.get(student, 0.0) == float(row["score"]), student


def test_one_at_a_time_from_a_zip_gives_the_same_rows(graded, class_dir, tmp_path):
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


def test_a_missing_submissions_folder_is_a_clear_error(tmp_path):
    result = _autograde(tmp_path / "nowhere", tmp_path / "out")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_folder_without_students_writes_an_empty_grade_sheet(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _autograde(tmp_path / "empty", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert _rows(tmp_path / "out") == {}
    shutil.rmtree(tmp_path / "out")


def test_the_run_says_what_confined_the_kernels_as_their_machines_said():
    def graded(sandbox):
        return SubmissionResult("s", "graded", sandbox=sandbox)
    assert kernels_sandbox([]) == ""
    assert kernels_sandbox([graded("namespaces+cgroups")] * 3) == "namespaces+cgroups"
    assert kernels_sandbox([graded("namespaces+cgroups"), graded("cgroups"),
                            graded("cgroups"), graded("")]) == \
        "cgroups (2 submissions), namespaces+cgroups (1 submission)"
