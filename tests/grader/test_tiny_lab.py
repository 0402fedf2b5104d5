"""A second lab (tests/grader/tiny_lab/: one NumPy exercise, its notebook, a capture and a
judge) released, validated and graded end to end through the command line by the same
engine as C2_W2, with `--lab tests/grader/tiny_lab`; and the two labs' results
never mix.

The command-line runs happen once, in the module's fixture, several at a time: the tiny
lab's kernels import only NumPy, and the slow parts are nbgrader's start-ups.
"""

import copy
import csv
import html
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from grader import cells
from grader.judge.text import Unreadable
from grader.judge.verdicts import judge_exercise
from grader.plugin import load_lab
from grader.records import ExerciseRun

ROOT = Path(__file__).resolve().parents[2]
LAB_ARG = "tests/grader/tiny_lab"  # as an instructor types it, from the repository
lab = load_lab(ROOT / LAB_ARG)
STUB = lab.exercise("EX1").stub
FEEDBACK = Path(lab.notebook_name).stem + ".html"

# student -> (the line replacing the stub, EX1's points, a fragment of the verdict message)
ANSWERS = {
    "right": ("means = np.mean(X, axis=0)", "10", None),
    "partial-divisor": ("means = X.sum(axis=0) / X.shape[1]", "4",
                        "right on 4 of the 10 hidden matrices. On a hidden X of shape (4, 2),"
                        " it divides by the number of columns"),
    "wrong-rows": ("means = np.mean(X, axis=1)", "0", "the mean of each row (axis=1)"),
    "raises": ("means = np.mean(X, axis=0) + offset", "0",
               "raised NameError: name 'offset' is not defined"),
    "untouched": (STUB, "0", "column_means returned None"),
}
INVALID = "invalid-json"
INVALID_DETAIL = "The notebook is not valid JSON: the file is cut off or damaged."
CSV_COLUMNS = ["student_id", "EX1", "score", "max_score", "status", "detail", "timestamp",
               "late_seconds", "penalty", "final_score"]
EXPECTED_ROWS = {
    **{student: [student, points, points, "10", "graded", ""]
       for student, (_, points, _) in ANSWERS.items()},
    INVALID: [INVALID, "0", "0", "10", "invalid", INVALID_DETAIL],
}
SECRETS = ("__GRADER_ANSWER__", "_hidden_test", "HIDDEN TESTS", "default_rng(", "def capture")


def _start(*args, lab_arg=LAB_ARG):
    """`python -m grader [--lab LAB_ARG] ARGS` from the repository's root, running."""
    command = [sys.executable, "-m", "grader", *(["--lab", lab_arg] if lab_arg else []),
               *map(str, args)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(process, timeout=300):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _answered(release, line):
    notebook = copy.deepcopy(release)
    for cell in notebook.cells:
        if cells.grade_id(cell) == "EX1":
            assert STUB in cell.source
            cell.source = cell.source.replace(STUB, line)
    return notebook


def _write(notebook, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


@dataclass
class Runs:
    release_dir: Path
    release: subprocess.CompletedProcess
    validated: dict  # "right" / "wrong" -> the finished `validate`
    out: Path
    graded: subprocess.CompletedProcess
    after_first: dict  # file name -> its text after the first batch
    again: subprocess.CompletedProcess
    c2_out: Path  # an OUT of the C2_W2 lab
    c2_graded: subprocess.CompletedProcess
    refused: dict  # "tiny-into-c2" / "c2-into-tiny" -> (the OUT, what it held, the run)
    report_of_c2: subprocess.CompletedProcess  # the tiny lab's `report` of the C2_W2 OUT


def _snapshot(out):
    return {"grades.csv": (out / "grades.csv").read_text(), "facts": _facts(out),
            "files": sorted(str(path.relative_to(out)) for path in out.rglob("*")
                            if path.name != "grader.log")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command-line run of this module, as many at a time as can be: release and
    the C2_W2 lab's OUT; then validate and autograde; then the second batch and the
    refusals."""
    base = tmp_path_factory.mktemp("tiny-lab")
    # An OUT of the C2_W2 lab, made by its own `autograde` on a class whose one notebook
    # cannot be read (so no TensorFlow kernel starts), while the tiny lab is released.
    c2_class = base / "c2-submissions"
    (c2_class / "broken").mkdir(parents=True)
    (c2_class / "broken" / "C2_W2_Assignment.ipynb").write_text('{"cells": [')
    c2_out = base / "c2-out"
    c2 = _start("autograde", c2_class, "--out", c2_out, "--workers", "1", lab_arg=None)
    release_dir = base / "release"
    release = _finish(_start("release", "--out", release_dir))
    assert release.returncode == 0, release.stderr

    released = nbformat.read(str(release_dir / lab.notebook_name), as_version=4)
    submissions = base / "submissions"
    for student, (line, _, _) in ANSWERS.items():
        _write(_answered(released, line), submissions / student / lab.notebook_name)
    right = (submissions / "right" / lab.notebook_name).read_text()
    (submissions / INVALID).mkdir()
    (submissions / INVALID / lab.notebook_name).write_text(right[:len(right) // 2])

    validating = {case: _start("validate", submissions / student / lab.notebook_name)
                  for case, student in (("right", "right"), ("wrong", "wrong-rows"))}
    out = base / "out"
    graded = _finish(_start("autograde", submissions, "--out", out, "--workers", "1"))
    assert graded.returncode == 0, graded.stderr
    after_first = {name: (out / name).read_text() for name in ("grades.csv", "verdicts.json")}
    c2_graded = _finish(c2)
    assert c2_graded.returncode == 0, c2_graded.stderr

    # Each refusal on a copy, so that a refusal that fails to refuse spoils nothing else.
    copies = {"tiny-into-c2": (c2_out, None), "c2-into-tiny": (out, LAB_ARG)}
    refusing = {}
    for case, (original, held_by) in copies.items():
        copied = base / f"{case}-out"
        shutil.copytree(original, copied)
        other_lab = None if held_by else LAB_ARG
        refusing[case] = (copied, _snapshot(copied), _start(
            "autograde", submissions, "--out", copied, "--workers", "1", lab_arg=other_lab))
    shutil.copytree(c2_out, base / "report-of-c2-out")
    reporting = _start("report", base / "report-of-c2-out")
    again = _finish(_start("autograde", submissions, "--out", out, "--workers", "1"))
    refused = {case: (copied, before, _finish(process))
               for case, (copied, before, process) in refusing.items()}
    return Runs(release_dir, release, {case: _finish(p) for case, p in validating.items()},
                out, graded, after_first, again, c2_out, c2_graded, refused,
                _finish(reporting))


# --- release -----------------------------------------------------------------------------

def test_release_writes_the_student_version_with_its_helper(runs):
    assert runs.release.stdout.strip() == (
        f"Released the student version: {runs.release_dir / lab.notebook_name}")
    # Every lab's release carries the student's check (grader/course/check_my_work.py).
    assert sorted(path.name for path in runs.release_dir.iterdir()) == [
        lab.notebook_name, "check_my_work.json", "check_my_work.py", "tiny_helpers.py"]
    assert (runs.release_dir / "tiny_helpers.py").read_bytes() == (
        lab.root / "tiny_helpers.py").read_bytes()
    released = nbformat.read(str(runs.release_dir / lab.notebook_name), as_version=4)
    source = lab.source
    assert [cell.id for cell in released.cells] == [cell.id for cell in source.cells]
    by_id = {cells.grade_id(cell): cell.source for cell in released.cells}
    assert STUB in by_id["EX1"] and "BEGIN SOLUTION" not in by_id["EX1"]
    assert "X.sum(axis=0) / X.shape[0]" not in by_id["EX1"]  # the reference solution
    test_cell = next(cell for cell in source.cells if cells.grade_id(cell) == "EX1_test")
    assert by_id["EX1_test"].strip() == cells.public_text(test_cell.source).strip()
    text = (runs.release_dir / lab.notebook_name).read_text()
    assert not [secret for secret in SECRETS if secret in text]


# --- validate ----------------------------------------------------------------------------

def test_validate_passes_a_right_answer_and_fails_a_wrong_one(runs):
    right, wrong = runs.validated["right"], runs.validated["wrong"]
    assert right.returncode == 0, right.stderr
    assert right.stdout.splitlines()[0] == "EX1 (column_means): public tests pass"
    assert wrong.returncode == 1, wrong.stderr
    assert wrong.stdout.splitlines()[0] == "EX1 (column_means): public tests FAIL"
    assert "expected an array of shape (2,) (one mean per column of X), got shape (3,)" in \
        wrong.stdout
    for result in (right, wrong):
        assert not [secret for secret in SECRETS if secret in result.stdout + result.stderr]


# --- autograde ---------------------------------------------------------------------------

def _rows(out):
    with (out / "grades.csv").open(newline="") as file:
        reader = csv.reader(file)
        assert next(reader) == CSV_COLUMNS
        rows = list(reader)
    # No timestamps, no due date: nothing late; the rows compared are the columns before.
    assert all(row[-4:] == ["", "0", "0", row[2]] for row in rows)
    return {row[0]: row[:-4] for row in rows}


def test_autograde_gives_every_student_the_expected_row(runs):
    assert _rows(runs.out) == EXPECTED_ROWS
    assert "Graded 6 submissions in " in runs.graded.stdout
    assert ("OUT holds 6 students: graded 5, timeout 0, error 0, invalid 1; mean score"
            " 2.3/10") in runs.graded.stdout
    assert "Traceback" not in runs.graded.stderr + (runs.out / "grader.log").read_text()


def test_partial_credit_is_the_notebooks_points_times_the_judges_share(runs):
    verdicts = json.loads((runs.out / "verdicts.json").read_text())
    partial = verdicts["partial-divisor"]["verdicts"]["EX1"]
    assert (partial["points"], partial["max_points"]) == (4.0, 10.0)
    assert [message["kind"] for message in partial["messages"]] == ["mean.divisor"]
    assert verdicts["right"]["verdicts"]["EX1"] == {"points": 10.0, "max_points": 10.0,
                                                    "messages": []}
    assert verdicts[INVALID]["verdicts"] == {}


def _page_text(page):
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_each_student_reads_a_feedback_page_without_the_hidden_tests(runs):
    feedback = runs.out / "feedback"
    assert sorted(path.name for path in feedback.iterdir()) == sorted(ANSWERS)
    hidden = lab.hidden_source_lines()
    assert hidden  # the capture's and the hidden block's lines: something to look for
    for student, (_, points, message) in ANSWERS.items():
        page = (feedback / student / FEEDBACK).read_text()
        text = _page_text(page)
        assert f"EX1: {points}/10 points." in text, student
        if message is None:
            assert "All hidden tests passed." in text
        else:
            assert message in text, student
        for haystack in (page, text):
            assert not [line for line in hidden if line in haystack], student


def test_the_report_shows_the_class_and_its_mistakes(runs):
    text = _page_text((runs.out / "report.html").read_text())
    assert "TINY: the class at a glance" in text
    assert "6 submissions : 5 graded , 0 timeout , 0 error , 1 invalid" in text
    for kind in ("mean.axis", "mean.divisor", "mean.none", "mean.raised"):
        assert kind in text
    assert f"{INVALID} invalid 0 {INVALID_DETAIL}" in text


def test_the_gradebook_holds_the_tiny_lab_and_its_scores(runs):
    with sqlite3.connect(runs.out / "gradebook.db") as db:
        assignments = db.execute("SELECT name, course_id FROM assignment").fetchall()
        students = {row[0] for row in db.execute("SELECT id FROM student")}
        scores = dict(db.execute(
            "SELECT submitted_assignment.student_id, grade.auto_score FROM grade"
            " JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id"
            " JOIN submitted_assignment"
            " ON submitted_notebook.assignment_id = submitted_assignment.id"))
    assert assignments == [("TINY", "tiny_lab")]
    assert students == set(EXPECTED_ROWS)
    # The invalid student has no submission, which nbgrader counts as 0.
    assert scores == {student: float(points) for student, (_, points, _) in ANSWERS.items()}
    for student in ANSWERS:
        graded = runs.out / "nbgrader" / "autograded" / student / "TINY" / lab.notebook_name
        assert not [line for line in lab.hidden_source_lines() if line in graded.read_text()]


def test_the_same_batch_again_keeps_every_result(runs):
    assert runs.again.returncode == 0, runs.again.stderr
    assert "Graded 0 submissions" in runs.again.stdout
    assert "kept 6 unchanged results" in runs.again.stdout
    assert (runs.out / "grades.csv").read_text() == runs.after_first["grades.csv"]
    before = json.loads(runs.after_first["verdicts.json"])
    after = json.loads((runs.out / "verdicts.json").read_text())
    # The same results, graded_at included; only the batch that last saw them moved on.
    assert {student: {**record, "batch": 2} for student, record in before.items()} == after


# --- the two labs' results never mix -----------------------------------------------------

def _facts(out):
    with sqlite3.connect(out / "journal.sqlite") as db:
        return {key: json.loads(value) for key, value in db.execute("SELECT * FROM facts")}


def test_the_c2_w2_lab_made_an_out_of_its_own(runs):
    assert _facts(runs.c2_out)["assignment"] == "C2_W2"
    header = (runs.c2_out / "grades.csv").read_text().splitlines()[0]
    assert header == ("student_id,UNQ_C1,UNQ_C2,score,max_score,status,detail,"
                      "timestamp,late_seconds,penalty,final_score")


@pytest.mark.parametrize(("case", "held", "graded"), [("tiny-into-c2", "C2_W2", "TINY"),
                                                      ("c2-into-tiny", "TINY", "C2_W2")])
def test_grading_a_lab_into_an_out_of_the_other_is_refused(runs, case, held, graded):
    out, before, result = runs.refused[case]
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {out} holds grades of {held}, not of {graded}: grade into another folder")
    assert "Traceback" not in result.stderr
    assert _snapshot(out) == before  # nothing graded, written or counted as a batch


def test_a_report_of_another_labs_out_is_refused(runs):
    result = runs.report_of_c2
    assert result.returncode == 1 and "holds grades of C2_W2, not of TINY" in result.stderr


# --- the plug-in itself, in this process -------------------------------------------------

def _hidden_block():
    test_cell = next(cell for cell in lab.source.cells if cells.grade_id(cell) == "EX1_test")
    return cells.hidden_text(test_cell.source)


def test_the_hidden_block_for_plain_nbgrader_passes_right_and_raises_on_wrong():
    import numpy as np

    block = _hidden_block()
    assert str(lab.default_seed) in block  # the recipe's default seed and shapes
    assert repr(lab_hidden_inputs().HIDDEN_SHAPES) in block
    exec(block, {"np": np, "column_means": lambda X: X.mean(axis=0)})
    for wrong in (lambda X: X.mean(axis=1), lambda X: X.sum(axis=0) / X.shape[1]):
        with pytest.raises(AssertionError, match="column_means is wrong on a hidden matrix"):
            exec(block, {"np": np, "column_means": wrong})


def lab_in_kernel():
    return sys.modules[type(lab).__module__].in_kernel


def lab_hidden_inputs():
    return sys.modules[type(lab).__module__].hidden_inputs


SECRET, OTHER_SECRET = bytes(16), bytes(range(16))


def _run(function, secret=SECRET):
    """An ExerciseRun as the capture makes it, from `function` run here on the inputs the
    kernel would be sent for `secret`."""
    inputs = json.loads(json.dumps(lab.hidden_inputs(secret)))["EX1"]
    return ExerciseRun("EX1", lab_in_kernel().capture("EX1", {"column_means": function},
                                                      inputs))


def test_the_judge_reads_forged_captures_without_failing():
    right = _run(lambda X: X.mean(axis=0))
    assert lab.judge(right, SECRET).score == 1.0
    assert lab.judge(right, OTHER_SECRET).messages[0].kind == "mean.tampered"  # other matrices
    for answer in ({"cases": "x"}, {"cases": [1] * 10},
                   {"cases": [{**case, "means": "x"} for case in right.answer["cases"]]}):
        with pytest.raises(Unreadable):
            lab.judge(ExerciseRun("EX1", answer), SECRET)
    missing = lab.judge(ExerciseRun("EX1", {"missing": "column_means"}), SECRET)
    assert (missing.score, missing.messages[0].kind) == (0.0, "mean.missing")


def test_points_come_from_the_source_notebook(tmp_path):
    copied = tmp_path / "tiny_lab"
    shutil.copytree(lab.root, copied, ignore=shutil.ignore_patterns("__pycache__"))
    notebook = nbformat.read(str(copied / lab.notebook_name), as_version=4)
    for cell in notebook.cells:
        if cells.grade_id(cell) == "EX1_test":
            cell.metadata.nbgrader["points"] = 25
    nbformat.write(notebook, str(copied / lab.notebook_name))
    other = load_lab(copied)
    assert type(other) is not type(lab)  # a package of its own, not this one's
    assert (other.points, other.max_score) == ({"EX1": 25.0}, 25.0)
    partial = _run(lambda X: X.sum(axis=0) / X.shape[1])
    verdict = judge_exercise(other, other.exercise("EX1"), partial, SECRET)
    assert (verdict.points, verdict.max_points) == (10.0, 25.0)


# --- what the engine cannot load yet (strict: remove the mark once grader/ is fixed) ------

def test_a_lab_class_defined_in_the_file_loaded_by_path_has_a_grading_version(tmp_path):
    from grader.pipeline import grading_version

    path = tmp_path / "inline_lab.py"
    path.write_text(f"""\
from pathlib import Path

from grader.plugin import Exercise, Lab


class InlineLab(Lab):
    assignment = "TINY"
    notebook_name = {lab.notebook_name!r}
    root = Path({str(lab.root)!r})
    course_id = "tiny_lab"
    exercises = (Exercise("EX1", "EX1_test", "column_means"),)

    def hidden_inputs(self, secret):
        return {{}}

    def capture_source(self):
        return ""

    def judge(self, run, secret):
        raise NotImplementedError


LAB = InlineLab()
""")
    assert grading_version(load_lab(path))


def test_a_lab_package_loaded_by_its_folder_can_import_its_siblings(tmp_path):
    folder = tmp_path / "folder_lab"
    folder.mkdir()
    (folder / "sibling.py").write_text(f"from grader.plugin import load_lab\n"
                                       f"LAB = load_lab({str(ROOT / LAB_ARG)!r})\n")
    (folder / "__init__.py").write_text("from .sibling import LAB\n")
    assert isinstance(load_lab(folder), type(lab))
