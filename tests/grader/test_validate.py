"""`python -m grader validate`: the student's check before submitting, public tests only."""

import subprocess
import sys

import corpus
import nbformat
import pytest

from grader import validate
from grader.intake import notebook_file
from grader.labs.c2_w2 import LAB as lab
from grader.student_check import check_exercise

C1_FAILS = "UNQ_C1 (my_softmax): public tests FAIL"
C1_PASSES = "UNQ_C1 (my_softmax): public tests pass"
C2_FAILS = "UNQ_C2 (Sequential model): public tests FAIL"
C2_PASSES = "UNQ_C2 (Sequential model): public tests pass"
# What only the hidden tests hold: never shown by validate.
SECRETS = ("__GRADER_ANSWER__", "_hidden_test", "HIDDEN TESTS", "default_rng(", "def capture")


# The notebooks validated, each as a student would leave it: answers typed into UNQ_C1 and
# UNQ_C2, or None for the released notebook as it is.
CASES = {
    "untouched": None,
    "correct": (corpus.STABLE, corpus.MODEL),
    "wrong-softmax": ("a = np.exp(z)", corpus.MODEL),
    # Both graded cells stop: a syntax error, and a typo in the name Sequential.
    "cells-raise": ("a = np.exp(z) / (np.sum(np.exp(z))", corpus.MODEL),
}
# Edits to the answer cells beyond the code typed between the markers.
CELL_EDITS = {"cells-raise": {"UNQ_C2": ("model = Sequential(", "model = Sequentail(")}}


def _start(path):
    return subprocess.Popen([sys.executable, "-m", "grader", "validate", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=lab.root)


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
        running[case] = _start(path)
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
