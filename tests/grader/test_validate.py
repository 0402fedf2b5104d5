"""`python -m grader validate`: the student's check before submitting, public tests only."""

import subprocess
import sys

import corpus
import nbformat
import pytest

from grader.intake import notebook_file
from grader.labs.c2_w2 import LAB as lab

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
}


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
            nbformat.write(corpus.answered(release, *answers), str(path))
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


def test_an_unreadable_file_is_refused_with_the_intakes_message(tmp_path):
    path = tmp_path / lab.notebook_name
    path.write_bytes(b"")
    result = _finish(_start(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: {notebook_file.EMPTY}"
    assert result.stdout == ""
