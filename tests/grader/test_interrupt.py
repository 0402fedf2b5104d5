"""Ctrl-C on `grader autograde` (grader/cli.py, pipeline.py, run/cluster.py): the whole
terminal's process group gets SIGINT, the workers included; the batch stops with one line
saying what is saved and how to resume, exit 130, no traceback; the same command resumes."""

import os
import signal
import subprocess
import sys

import corpus
import nbformat
import pytest

from grader.labs.c2_w2 import LAB

STUDENTS = [f"s{number}" for number in range(1, 7)]


@pytest.fixture(scope="module")
def small_class(released_lab, tmp_path_factory):
    release = nbformat.read(str(released_lab / corpus.NOTEBOOK), as_version=4)
    folder = tmp_path_factory.mktemp("small-class")
    for student in STUDENTS:
        (folder / student).mkdir()
        nbformat.write(corpus.answered(release, corpus.STABLE, corpus.MODEL),
                       str(folder / student / corpus.NOTEBOOK))
    return folder


def _command(submissions, out):
    return [sys.executable, "-m", "grader", "autograde", str(submissions), "--out", str(out),
            "--workers", "1", "--cell-timeout", "30"]


def test_ctrl_c_stops_quietly_and_the_same_command_resumes(small_class, tmp_path,
                                                          sandbox_required):
    out = tmp_path / "out"
    process = subprocess.Popen(_command(small_class, out), cwd=LAB.root, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)  # its own group, as a terminal's
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Graded 1 of"):
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
            break
    seen += process.stdout.readlines()
    assert process.wait(timeout=300) == 130, "".join(seen)
    text = "".join(seen)
    assert "Traceback" not in text, text
    [interrupted] = [line for line in seen if line.startswith("Interrupted: ")]
    assert " saved in " in interrupted and "the same command resumes" in interrupted
    again = subprocess.run(_command(small_class, out), cwd=LAB.root, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    assert f"OUT holds {len(STUDENTS)} students: graded {len(STUDENTS)}," in again.stdout
