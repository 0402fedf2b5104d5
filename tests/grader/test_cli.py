"""The command line: a thin layer, so only what it adds is tested here."""

import io
import subprocess
import sys

from grader.cli import ProgressBar, summary
from grader.labs.c2_w2 import LAB as lab
from grader.records import ExerciseVerdict, SubmissionResult


def _result(student, status, points=()):
    verdicts = {f"UNQ_C{i + 1}": ExerciseVerdict(f"UNQ_C{i + 1}", p, 50)
                for i, p in enumerate(points)}
    return SubmissionResult(student, status, "", verdicts)


def test_summary_counts_every_status_and_the_mean_score():
    results = [_result("a", "graded", (50, 50)), _result("b", "graded", (50, 0)),
               _result("c", "invalid"), _result("d", "timeout", (0, 0))]
    assert summary(results, 12.34, 2) == (
        "Graded 4 submissions in 12.3 s with 2 workers: graded 2, timeout 1, error 0, "
        "invalid 1; mean score 37.5/100")


def test_progress_bar_redraws_one_line_and_ends_it():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(1, 2, _result("alice", "graded"))
    bar(2, 2, _result("bob", "invalid"))
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "1/2 alice: graded" in text and "2/2 bob: invalid" in text
    assert "[" + "#" * ProgressBar.WIDTH + "]" in text


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grader", "autograde", str(tmp_path),
                             "--out", str(tmp_path / "out"), "--workers", "0"],
                            capture_output=True, text=True, cwd=lab.root)
    assert result.returncode == 2 and "must be a positive number" in result.stderr
    assert not (tmp_path / "out").exists()
