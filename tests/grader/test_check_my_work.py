"""check_my_work.py (grader/student_check.py, written by grader/course/check_my_work.py):
the student's check with only the released folder, no repository, no grader."""

import ast
import os
import shutil
import subprocess
import sys

import corpus
import nbformat
import pytest

from grader import cells
from grader.labs.c2_w2 import LAB as lab

C1_PASSES = "UNQ_C1 (my_softmax): public tests pass"
C1_FAILS = "UNQ_C1 (my_softmax): public tests FAIL"
C2_PASSES = "UNQ_C2 (Sequential model): public tests pass"
CASES = {"right": (corpus.STABLE, corpus.MODEL), "wrong": ("a = np.exp(z)", corpus.MODEL)}


@pytest.fixture(scope="module")
def student_folder(released_lab, tmp_path_factory):
    """The released folder alone, copied where no repository is, with the two notebooks."""
    folder = tmp_path_factory.mktemp("student") / "lab"
    shutil.copytree(released_lab, folder)
    release = nbformat.read(str(released_lab / lab.notebook_name), as_version=4)
    for case, (softmax, model) in CASES.items():
        nbformat.write(corpus.answered(release, softmax, model), str(folder / f"{case}.ipynb"))
    return folder


@pytest.fixture(scope="module")
def checked(student_folder):
    """Each case checked once, both at the same time: each run starts TensorFlow."""
    environment = {**os.environ, "PYTHONPATH": ""}
    running = {case: subprocess.Popen([sys.executable, "check_my_work.py", f"{case}.ipynb"],
                                      cwd=student_folder, env=environment, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for case in CASES}
    return {case: (process.wait(timeout=600), *process.communicate())
            for case, process in running.items()}


def test_a_right_notebook_passes_with_only_the_release(checked):
    status, stdout, stderr = checked["right"]
    assert status == 0, stdout + stderr
    assert C1_PASSES in stdout and C2_PASSES in stdout


def test_a_wrong_notebook_fails_with_the_public_tests_message(checked):
    status, stdout, stderr = checked["wrong"]
    assert status == 1, stdout + stderr
    assert C1_FAILS in stdout and C2_PASSES in stdout


def test_a_file_that_is_not_a_notebook_is_exit_2(student_folder):
    (student_folder / "notes.ipynb").write_text("not json")
    result = subprocess.run([sys.executable, "check_my_work.py", "notes.ipynb"],
                            cwd=student_folder, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert result.returncode == 2 and "not a notebook" in result.stderr


def test_the_release_holds_no_line_of_the_hidden_tests_and_no_grader(released_lab):
    hidden = lab.hidden_source_lines()
    for path in released_lab.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".json", ".ipynb"):
            text = path.read_text(encoding="utf-8")
            assert not [line for line in hidden if line in text], path
    checker = (released_lab / "check_my_work.py").read_text(encoding="utf-8")
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(checker))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import)
                              else [ast.alias(node.module or "")])}
    assert imported <= {"copy", "json", "re", "sys", "dataclasses", "pathlib", "nbformat",
                        "nbclient"}


def test_the_checker_runs_the_test_cells_as_released(released_lab):
    import json

    from grader.student_check import prepared

    spec = json.loads((released_lab / "check_my_work.json").read_text(encoding="utf-8"))
    notebook = json.loads((released_lab / lab.notebook_name).read_text(encoding="utf-8"))
    test_cell = next(cell for cell in notebook["cells"] if cells.grade_id(cell) == "UNQ_C1_test")
    test_cell["source"] = "print('All tests passed!')"
    checked_notebook, notes = prepared(notebook, spec)
    restored = next(cell for cell in checked_notebook["cells"]
                    if cells.grade_id(cell) == "UNQ_C1_test")
    assert restored["source"] == spec["given_cells"]["UNQ_C1_test"]
    assert notes == ["the cell UNQ_C1_test was changed: it is checked as released"]
    assert spec["cell_timeout"] == 60 and spec["skipped_cells"]
