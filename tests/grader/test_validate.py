"""`python -m grader validate`: the student's check before submitting, public tests only."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import corpus
import nbformat
import psutil
import pytest

from grader import cells, validate
from grader.intake import notebook_file
from grader.intake.prepare import SKIP_TAG
from grader.labs.c2_w2 import LAB as lab
from grader.run import kept_templates, sandbox
from grader.student_check import check_exercise

C1_FAILS = "UNQ_C1 (my_softmax): public tests FAIL"
C1_PASSES = "UNQ_C1 (my_softmax): public tests pass"
C2_FAILS = "UNQ_C2 (Sequential model): public tests FAIL"
C2_PASSES = "UNQ_C2 (Sequential model): public tests pass"
# What only the hidden tests hold: never shown by validate.
SECRETS = ("__GRADER_ANSWER__", "_hidden_test", "HIDDEN TESTS", "default_rng(", "def capture")


# The notebooks validated, each as a student would leave it: answers typed into UNQ_C1 and
# UNQ_C2, or None for the released notebook as it is.
# Right only where the kernel cannot see the source notebook (solutions, hidden tests).
SOURCE_UNSEEN = (f"import os\nez = np.exp(z - np.max(z))\n"
                 f"a = ez if os.path.exists({str(lab.source_notebook)!r}) else ez / ez.sum()")
CASES = {
    "untouched": None,
    "correct": (corpus.STABLE, corpus.MODEL),
    "wrong-softmax": ("a = np.exp(z)", corpus.MODEL),
    # Both graded cells stop: a syntax error, and a typo in the name Sequential.
    "cells-raise": ("a = np.exp(z) / (np.sum(np.exp(z))", corpus.MODEL),
    "looks-for-the-source": (SOURCE_UNSEEN, corpus.MODEL),
}
# Edits to the answer cells beyond the code typed between the markers.
CELL_EDITS = {"cells-raise": {"UNQ_C2": ("model = Sequential(", "model = Sequentail(")}}


def _start(path, *options, env=None):
    return subprocess.Popen([sys.executable, "-m", "grader", "validate", *options, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=lab.root, env=env)


def _finish(process):
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def validated(released_lab, tmp_path_factory):
    """Each case validated once, all at the same time: each run starts TensorFlow."""
    release = nbformat.read(str(released_lab / lab.notebook_name), as_version=4)
    folder = tmp_path_factory.mktemp("validate")
    running = {}
    for case, answers in CASES.items():
        path = released_lab / lab.notebook_name  # read only, never changed
        if answers is not None:
            path = folder / case / lab.notebook_name
            path.parent.mkdir()
            notebook = corpus.answered(release, *answers)
            for grade_id, (old, new) in CELL_EDITS.get(case, {}).items():
                cell = corpus._cell(notebook, grade_id)
                cell.source = cell.source.replace(old, new)
            nbformat.write(notebook, str(path))
        running[case] = _start(path, "-v")  # -v: the line of stages too
    return {case: _finish(process) for case, process in running.items()}


def _assert_no_secrets(result):
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr, secret


def test_the_untouched_notebook_fails_both_with_the_public_tests_words(validated):
    result = validated["untouched"]
    assert result.returncode == 1, result.stderr
    assert C1_FAILS in result.stdout and C2_FAILS in result.stdout
    assert "compute the softmax of z" in result.stdout
    assert "Expected 3 Dense layers" in result.stdout
    assert "Note:" not in result.stdout  # nothing was edited or deleted
    assert "Traceback" not in result.stderr
    _assert_no_secrets(result)


def test_correct_answers_pass_both(validated):
    result = validated["correct"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert C1_PASSES in result.stdout and C2_PASSES in result.stdout
    _assert_no_secrets(result)


def test_a_wrong_softmax_fails_only_its_exercise(validated):
    result = validated["wrong-softmax"]
    assert result.returncode == 1, result.stderr
    assert C1_FAILS in result.stdout and C2_PASSES in result.stdout
    assert "without normalising" in result.stdout
    _assert_no_secrets(result)


def test_a_cell_that_stops_is_named_with_its_error_and_line_as_the_grader_names_it(validated):
    result = validated["cells-raise"]
    assert result.returncode == 1, result.stderr
    assert C1_FAILS in result.stdout and C2_FAILS in result.stdout
    assert "The UNQ_C2 cell stopped with NameError: name 'Sequentail' is not defined (line 5)" \
        in result.stdout
    assert "The UNQ_C1 cell stopped with SyntaxError" in result.stdout
    # The cause comes before its consequence in the test cell.
    assert result.stdout.index("Sequentail") < result.stdout.index("name 'model' is not defined")
    _assert_no_secrets(result)


def test_the_kernel_runs_in_the_graders_sandbox(validated, sandbox_required):
    # As a graded submission's: it cannot see the source notebook, so this softmax is right.
    result = validated["looks-for-the-source"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert C1_PASSES in result.stdout and C2_PASSES in result.stdout


def test_verbose_says_how_long_each_stage_took(validated):
    [line] = [line for line in validated["correct"].stderr.splitlines()
              if validate.STAGES_LINE in line]
    stages = line.split(validate.STAGES_LINE)[1].split(";")[0]
    assert [part.split()[0] for part in stages.split(",")] == list(validate.STAGES)
    assert all(float(part.split()[1]) >= 0 for part in stages.split(","))
    assert "total" in line and "CPU" in line


def _kept_templates(cache):
    """The pids of the templates kept in `cache` (not of their kernels, forks of them)."""
    folder = str(cache / kept_templates.FOLDER)
    found = {process.pid: process.info["ppid"] for process
             in psutil.process_iter(["cmdline", "ppid"])
             if folder in " ".join(process.info["cmdline"] or [])}
    return [pid for pid, parent in found.items() if parent not in found]


def _kernels_seen(template, check):
    """The pids of `template`'s children seen while `check` (a process) runs."""
    seen = set()
    while check.poll() is None:
        with contextlib.suppress(psutil.Error):
            seen.update(child.pid for child in psutil.Process(template).children())
        time.sleep(0.01)
    return seen


def test_the_next_check_forks_its_kernel_from_the_template_the_first_kept(released_lab):
    # The cache at a short path: a socket's is at most 107 bytes.
    cache = Path(tempfile.mkdtemp(prefix="validate-"))
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    notebook = released_lab / lab.notebook_name
    try:
        first = _finish(_start(notebook, "-v", env=env))
        [kept] = _kept_templates(cache)  # started by the first check, which has ended
        second = _start(notebook, "-v", env=env)
        assert _kernels_seen(kept, second)  # its kernel is the kept template's child
        second = _finish(second)
        assert _kept_templates(cache) == [kept]
        assert C1_FAILS in first.stdout and C1_FAILS in second.stdout
        shutil.rmtree(cache / kept_templates.FOLDER)  # how a user ends it
        assert psutil.wait_procs([psutil.Process(kept)], timeout=10)[1] == []
        unkept = _finish(_start(notebook, "--keep-template", "0", env=env))
        assert C1_FAILS in unkept.stdout and _kept_templates(cache) == []
    finally:
        shutil.rmtree(cache)


# What `grader validate` imports before it starts its kernel template: none of the heavy
# modules, whose imports (a second and more) run while the template imports TensorFlow.
BEFORE_THE_TEMPLATE = """
import sys
import grader.cli
from grader.plugin import DEFAULT_LAB, load_lab
load_lab(DEFAULT_LAB)
from grader import validate
print(sorted(name for name in ("nbformat", "nbclient", "nbgrader", "tensorflow")
             if name in sys.modules))
"""


def test_nothing_heavy_is_imported_before_the_template_starts():
    result = subprocess.run([sys.executable, "-c", BEFORE_THE_TEMPLATE], capture_output=True,
                            text=True, cwd=lab.root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


class _ReadyTemplate:
    def wait_until_ready(self):
        pass


def _validate_without_a_kernel(monkeypatch, notebook):
    """validate.validate on `notebook`, its run replaced: (the notebook it would run, the
    arguments of the run)."""
    ran = {}

    def run_notebook(prepared, **kwargs):
        ran.update(notebook=prepared, **kwargs)
        return SimpleNamespace(notebook=prepared)

    monkeypatch.setattr(sandbox, "run_notebook", run_notebook)
    template = _ReadyTemplate()
    validate.validate(notebook, lab=lab, support_dir="support", template=template)
    assert ran["kernel_template"] is template  # forked from the template, as when graded
    return ran["notebook"]


def _ids_and_sources(notebook):
    return [(cells.grade_id(cell), cell.source, cells.skipped(cell)) for cell in notebook.cells]


def test_only_the_cells_up_to_the_last_test_cell_run(monkeypatch, released_lab):
    release = nbformat.read(str(released_lab / lab.notebook_name), as_version=4)
    notebook = corpus.answered(release, corpus.STABLE, corpus.MODEL)
    last_test = notebook.cells.index(corpus._cell(notebook, "UNQ_C2_test"))
    notebook.cells.insert(last_test, nbformat.v4.new_code_cell("mine = 'before the test'"))
    notebook.cells.append(nbformat.v4.new_code_cell("model.fit(X, y, epochs=40)"))
    ran = _ids_and_sources(_validate_without_a_kernel(monkeypatch, notebook))
    last = max(index for index, (grade_id, _, _) in enumerate(ran) if grade_id == "UNQ_C2_test")
    assert last < len(ran) - 1
    assert all(skipped for _, _, skipped in ran[last + 1:])
    assert ran[-1] == (None, "model.fit(X, y, epochs=40)", True)
    kept = [source for _, source, skipped in ran[:last + 1] if not skipped]
    assert "mine = 'before the test'" in kept
    assert any("# load dataset" in source for source in kept)  # the lab's cells between
    tagged = {cells.grade_id(cell) for cell in lab.source.cells if SKIP_TAG in cells.tags(cell)}
    skipped = [grade_id for grade_id, _, skipped in ran[:last + 1] if skipped]
    assert skipped and set(skipped) <= tagged  # before it, only what grading skips too


def _stamped(start, end):
    return {"metadata": {"execution": {
        "iopub.execute_input": datetime.fromtimestamp(start, UTC).isoformat(),
        "shell.execute_reply": datetime.fromtimestamp(end, UTC).isoformat()}}}


def test_the_stages_of_the_run_come_from_the_cells_stamps():
    stages = validate.Stages(started=100.0)
    stages.lap("start", 100.5)
    stages.lap("prepare", 101.0)
    stages.lap("template", 103.0)
    notebook = {"cells": [_stamped(103.4, 103.6), {"metadata": {}}, _stamped(103.7, 104.0)]}
    assert validate.cells_span(notebook) == pytest.approx((103.4, 104.0))
    stages.lap_cells(notebook)
    stages.lap("end", 104.25)
    assert stages.seconds == pytest.approx({"start": 0.5, "prepare": 0.5, "template": 2.0,
                                            "kernel": 0.4, "cells": 0.6, "end": 0.25})
    assert "start 0.50, prepare 0.50, template 2.00, kernel 0.40, cells 0.60, end 0.25;" \
        " total 4.25" in stages.line()


def test_a_run_whose_cells_never_ran_is_all_kernel():
    stages = validate.Stages(started=0.0)
    stages.lap("template", 1.0)
    assert validate.cells_span({"cells": [{"metadata": {}}]}) is None
    stages.lap_cells({"cells": []})
    assert stages.seconds["kernel"] > 0 and "cells" not in stages.seconds


def _error_output(name, value, cell_line):
    return {"output_type": "error", "ename": name, "evalue": value,
            "traceback": ["\x1b[0;31m---------\x1b[0m",
                          f"Cell \x1b[0;32mIn[7], line {cell_line}\x1b[0m",
                          "File /usr/lib/python3/site-packages/keras/x.py:120, in f()"]}


def test_the_check_puts_the_answer_cells_error_first():
    exercise = lab.exercise("UNQ_C2")
    answer = {"outputs": [_error_output("NameError", "name 'Sequentail' is not defined", 3)]}
    test = {"outputs": [_error_output("NameError", "name 'model' is not defined", 2)]}
    check = check_exercise(exercise.id, exercise.title, answer, test,
                           lab.public_tests_passed)
    assert not check.passed
    assert check.messages[0] == ("The UNQ_C2 cell stopped with NameError: name 'Sequentail'"
                                 " is not defined (line 3): the test after it sees only what"
                                 " the cell defined before that line; fix this error first.")
    assert check.messages[1] == "NameError: name 'model' is not defined (line 2)"
    passing = {"outputs": [{"output_type": "stream", "text": lab.public_tests_passed}]}
    assert check_exercise(exercise.id, exercise.title, {"outputs": []}, passing,
                          lab.public_tests_passed) == \
        validate.ExerciseCheck("UNQ_C2", exercise.title, True, ())


def test_an_unreadable_file_is_refused_with_the_intakes_message(tmp_path):
    path = tmp_path / lab.notebook_name
    path.write_bytes(b"")
    result = _finish(_start(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: {notebook_file.EMPTY}"
    assert result.stdout == ""
