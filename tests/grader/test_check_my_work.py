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
# Leaves a file behind if the kernel exits on its own: at the end it must be killed instead
# (a kernel holding TensorFlow takes seconds to exit, for nothing the check reads).
EXIT_HOOK = "import atexit\natexit.register(lambda: open('kernel-exited', 'w').close())\n"
CASES = {"right": (EXIT_HOOK + corpus.STABLE, corpus.MODEL),
         "wrong": ("a = np.exp(z)", corpus.MODEL)}


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


def test_the_kernel_is_killed_at_the_end_not_asked_to_exit(checked, student_folder):
    assert checked["right"][0] == 0
    assert not (student_folder / "kernel-exited").exists()


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


def _spec_and_notebook(released_lab):
    import json

    spec = json.loads((released_lab / "check_my_work.json").read_text(encoding="utf-8"))
    notebook = json.loads((released_lab / lab.notebook_name).read_text(encoding="utf-8"))
    return spec, notebook


def _code_cell(source):
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [],
            "execution_count": None}


def test_the_cells_after_the_last_test_cell_are_emptied(released_lab):
    from grader.student_check import prepared

    spec, notebook = _spec_and_notebook(released_lab)
    ids = [cells.grade_id(cell) for cell in notebook["cells"]]
    last_test = ids.index("UNQ_C2_test")
    notebook["cells"].insert(last_test, _code_cell("mine = 1"))
    notebook["cells"].append(_code_cell("model.fit(X, y, epochs=40)"))
    checked_notebook, notes = prepared(notebook, spec)
    sources = [cell["source"] for cell in checked_notebook["cells"]]
    assert notes == []
    assert sources[last_test] == "mine = 1"
    assert sources[last_test + 1] == spec["given_cells"]["UNQ_C2_test"]
    assert sources[last_test + 2:] and not any(sources[last_test + 2:])
    assert any("load_data()" in source for source in sources[:last_test])  # the lab's own


def test_without_test_cells_no_cell_is_emptied_for_it(released_lab):
    from grader.student_check import prepared

    spec, notebook = _spec_and_notebook(released_lab)
    notebook["cells"] = [_code_cell("print(1)"), _code_cell("print(2)")]
    checked_notebook, _ = prepared(notebook, spec)
    assert [cell["source"] for cell in checked_notebook["cells"]] == ["print(1)", "print(2)"]
