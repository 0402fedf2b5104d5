"""A coordinator killed at any moment of a batch loses nothing that was saved: running
`autograde` again resumes, and after a few kills the outputs equal those of a batch that
was never interrupted (same secret key), with no student graded twice in the gradebook.

The coordinator is SIGKILLed (no handler runs, nothing is flushed) at moments drawn at
random (a fixed seed, so a failure can be repeated) from the start of the batch to its end.
"""

import csv
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psutil
import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from grader.labs.c2_w2 import LAB as lab
from grader.publish.journal import Journal

STUDENTS = ["ok-loop-softmax-input-model", "ok-vectorised-softmax-no-input",
            "wrong-softmax-unnormalised", "wrong-model-units", "wrong-softmax-raises",
            "wrong-both-untouched-stubs", "invalid-truncated", "ok-test-cell-deleted"]
# The repeat key (--secret-key): each grading's secret derives from it, so that two batches
# of the same submissions write the same bytes.
SECRET_KEY = "5ec2e7c2" * 4
KILLS = 3
WORKER_EXIT_SECONDS = 30  # for a killed coordinator's worker processes to end


def _command(submissions, out):
    return [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
            "--workers", "2", "--cell-timeout", "10", "--secret-key", SECRET_KEY]


def _run(submissions, out):
    result = subprocess.run(_command(submissions, out), capture_output=True, text=True,
                            cwd=lab.root, timeout=900)
    assert result.returncode == 0, result.stderr
    return result


def _killed_after(submissions, out, seconds):
    """Start a batch, SIGKILL its coordinator after `seconds`; its processes left behind."""
    process = subprocess.Popen(_command(submissions, out), cwd=lab.root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    coordinator = psutil.Process(process.pid)
    family = [coordinator, *coordinator.children(recursive=True)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    gone, alive = psutil.wait_procs(family[1:], timeout=WORKER_EXIT_SECONDS)
    for left in alive:  # never leave them to the next test, but say so
        left.kill()
    return alive


def _grades(out):
    return (out / "grades.csv").read_text(encoding="utf-8")


def _gradebook(out):
    """(every submission's student, as many times as the gradebook holds one; each
    exercise's automatic score per student), read through nbgrader's own API."""
    with sqlite3.connect(out / "gradebook.db") as db:  # a second submission would show here
        submitted = sorted(row[0] for row in db.execute(
            "SELECT student_id FROM submitted_assignment"))
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{out / 'gradebook.db'}",
                                              course_id=lab.course_id) as gradebook:
        warnings.simplefilter("ignore", category=SAWarning)
        scores = {(student, exercise.test_cell): gradebook.find_grade(
            exercise.test_cell, Path(lab.notebook_name).stem, lab.assignment, student).score
            for student in submitted for exercise in lab.exercises}
    return submitted, scores


def _feedback(out):
    return {path.relative_to(out).as_posix(): path.read_bytes()
            for path in sorted((out / "feedback").glob("*/*.html"))}


@pytest.fixture(scope="module")
def some_class(class_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash") / "submissions"
    for student in STUDENTS:
        shutil.copytree(class_dir / student, folder / student)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(some_class, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    started = time.monotonic()
    _run(some_class, out)
    return out, time.monotonic() - started


def test_a_batch_killed_again_and_again_ends_as_one_never_killed(some_class, uninterrupted,
                                                                  tmp_path):
    reference, seconds = uninterrupted
    out = tmp_path / "out"
    draw = random.Random(7)
    left_behind, saved = [], []
    for _ in range(KILLS):
        left_behind += _killed_after(some_class, out, draw.uniform(1.0, seconds))
        if (out / "journal.sqlite").exists():
            with Journal(out) as journal:
                saved.append(len(journal.records()))
    assert not left_behind, [process.pid for process in left_behind]
    result = _run(some_class, out)
    assert saved and saved == sorted(saved), saved  # saved results are never lost
    assert "Graded" in result.stdout
    assert _grades(out) == _grades(reference)
    submitted, scores = _gradebook(out)
    assert submitted == sorted(set(submitted)), "a student graded twice in the gradebook"
    assert (submitted, scores) == _gradebook(reference)
    assert _feedback(out) == _feedback(reference)
    with (out / "grades.csv").open(newline="") as file:
        assert sorted(row["student_id"] for row in csv.DictReader(file)) == sorted(STUDENTS)
