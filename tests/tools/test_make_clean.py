"""`make clean` tidies up without deleting a student's work.

Each test runs the real Makefile's `clean` target in a temporary copy of the project's
layout: a stand-in `.venv`, caches, and a `student/` folder as `make lab` leaves it.
"""

import shutil
import subprocess

import pytest

from grader.labs.c2_w2 import LAB as lab

RELEASE_FILES = ["autils.py", "public_tests.py", "data/X.npy", "images/relu.png"]


@pytest.fixture
def project(tmp_path):
    shutil.copy(lab.root / "Makefile", tmp_path / "Makefile")
    for made in [".venv/bin/python", ".pytest_cache/README.md", ".ruff_cache/CACHEDIR.TAG",
                 *(f"student/{name}" for name in RELEASE_FILES)]:
        (tmp_path / made).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / made).write_text("made by a tool\n")
    return tmp_path


def _make_clean(project):
    result = subprocess.run(["make", "--no-print-directory", "-C", str(project), "clean"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _tools_output_is_gone(project):
    return not any((project / name).exists() for name in [".venv", ".pytest_cache", ".ruff_cache"])


@pytest.mark.parametrize("notebook", ["C2_W2_Assignment.ipynb", "C2_W2_Assignment (1).ipynb",
                                      ".ipynb_checkpoints/C2_W2_Assignment-checkpoint.ipynb"])
def test_the_students_notebook_survives(project, notebook):
    work = project / "student" / notebook
    work.parent.mkdir(parents=True, exist_ok=True)
    work.write_text('{"cells": ["my answers"]}\n')
    printed = _make_clean(project)
    assert work.read_text() == '{"cells": ["my answers"]}\n'
    assert all((project / "student" / name).exists() for name in RELEASE_FILES)
    assert "Keeping student/" in printed
    assert _tools_output_is_gone(project)


def test_a_student_folder_without_a_notebook_is_removed(project):
    _make_clean(project)
    assert not (project / "student").exists()
    assert _tools_output_is_gone(project)


def test_clean_without_a_student_folder(project):
    shutil.rmtree(project / "student")
    assert "Keeping" not in _make_clean(project)
    assert _tools_output_is_gone(project)
