"""The grader as a normal package: built and installed (`pip install .`, not editable), it
releases and grades from any folder, the lab's files travelling inside it."""

import ast
import csv
import os
import subprocess
import sys
from pathlib import Path

import corpus
import nbformat
import pytest

from grader.labs.c2_w2 import LAB as lab

ROOT = Path(__file__).resolve().parents[2]
STUDENT = "ok-stable-softmax-relu-function"


def _setup_lab_files():
    """setup.py's LAB_FILES, read without running the build."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    assignment = next(node for node in tree.body if isinstance(node, ast.Assign)
                      and node.targets[0].id == "LAB_FILES")
    return ast.literal_eval(assignment.value)


def test_the_build_copies_exactly_the_labs_notebook_and_release_files():
    assert _setup_lab_files() == {
        "grader/labs/c2_w2/lab_files": (lab.notebook_name, *lab.release_files)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The grader installed (no dependencies: they are this venv's) into a folder of its
    own, and an environment that imports it from there, run from another folder."""
    target = tmp_path_factory.mktemp("installed")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)],
                   cwd=elsewhere, check=True, timeout=600)
    environment = {**os.environ, "PYTHONPATH": str(target)}
    return target, elsewhere, environment


def _grader(installed, *args, timeout=600):
    _, elsewhere, environment = installed
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=elsewhere,
                          env=environment, capture_output=True, text=True, timeout=timeout)


def test_the_installed_grader_is_the_one_imported_and_carries_the_labs_files(installed):
    target, elsewhere, environment = installed
    where = subprocess.run([sys.executable, "-c", "import grader.labs.c2_w2 as c;"
                            " print(c.LAB.root)"], cwd=elsewhere, env=environment,
                           capture_output=True, text=True, check=True, timeout=120)
    root = Path(where.stdout.strip())
    assert root.is_relative_to(target) and (root / lab.notebook_name).is_file()
    assert all((root / name).exists() for name in lab.release_files)


def test_the_installed_grader_has_the_checkouts_grading_version(installed):
    from grader.cli import version_text

    result = _grader(installed, "--version")
    assert result.returncode == 0 and result.stdout.strip() == version_text("grader.labs.c2_w2")


def test_the_installed_grader_releases_and_grades_from_another_folder(installed, tmp_path):
    release = _grader(installed, "release", "--out", tmp_path / "release")
    assert release.returncode == 0, release.stderr
    released = nbformat.read(str(tmp_path / "release" / lab.notebook_name), as_version=4)
    assert all((tmp_path / "release" / name).exists() for name in lab.release_files)
    answers = corpus.ANSWERS[STUDENT]
    corpus._write(tmp_path / "class" / STUDENT / lab.notebook_name,
                  corpus.answered(released, *answers))
    graded = _grader(installed, "autograde", tmp_path / "class", "--out", tmp_path / "out",
                     "--workers", "1", timeout=1200)
    assert graded.returncode == 0, graded.stderr
    with open(tmp_path / "out" / "grades.csv", newline="") as grades:
        row = next(csv.DictReader(grades))
    assert (row["student_id"], row["status"], row["score"]) == (STUDENT, "graded", "100")
