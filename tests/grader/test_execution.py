"""grader.run.execution: answers captured from the test cells, whatever the rest of the notebook
does (errors, endless loops, a dying kernel, processes left behind, a flood of output).

The notebooks are tiny and import nothing heavy, so each kernel starts and stops fast.
"""

import contextlib
import time

import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.run.execution import MARKER, TIMEOUT_ERROR, execute

CAPTURE = {"X_test": "X", "Y_test": "Y"}
ANSWER = {"cases": [{"z": [1.0, 2.0], "a": [0.27, 0.73]}]}


def answer_code(exercise, answer):
    """What a hidden test prints: its exercise's answer as one line of JSON."""
    return f'import json\nprint("\\n{MARKER} {exercise} " + json.dumps({answer!r}))'


def cell(code, grade_id=None, **metadata):
    if grade_id:
        metadata["nbgrader"] = {"grade_id": grade_id, "grade": grade_id.endswith("_test"),
                                "solution": not grade_id.endswith("_test"), "locked": False,
                                "schema_version": 3}
    return new_code_cell(code, metadata=metadata)


def run(workdir, *cells, cell_timeout=10, timeout=30):
    return execute(new_notebook(cells=list(cells)), workdir=workdir, capture_cells=CAPTURE,
                   cell_timeout=cell_timeout, timeout=timeout)


def printed(outcome, index):
    return "".join(output.get("text", "") for output in outcome.notebook.cells[index].outputs
                   if output.get("output_type") == "stream")


def enames(outcome, index):
    return [output.get("ename") for output in outcome.notebook.cells[index].outputs
            if output.get("output_type") == "error"]


# --- Capture --------------------------------------------------------------------------------

def test_the_test_cells_answer_is_captured_and_its_line_taken_out(tmp_path):
    outcome = run(tmp_path, cell(f"print('before')\n{answer_code('X', ANSWER)}\nprint('after')",
                                 "X_test"))
    assert outcome.answers == {"X": ANSWER}
    assert outcome.cell_errors == {"X": None}
    text = printed(outcome, 0)
    assert "before" in text and "after" in text
    assert MARKER not in text and "cases" not in text
    assert not (outcome.timed_out or outcome.kernel_died or outcome.error)


def test_a_fake_answer_printed_by_a_students_cell_is_ignored(tmp_path):
    fake = answer_code("X", {"cases": "all right"})
    outcome = run(tmp_path, cell(fake, "X"), cell("print('no answer here')", "X_test"),
                  cell(fake))
    assert outcome.answers == {"X": None}
    assert "no answer here" in printed(outcome, 1)


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_imitated_answer_line_in_the_test_cell_voids_the_answer(tmp_path, when):
    # Student code the test calls, or a hook run after the cell, may print an imitation
    # before or after the hidden test's own line: neither can then be believed.
    student = cell("import json\ndef f():\n"
                   f"    print('\\n{MARKER} X ' + json.dumps({{'cases': 'fake'}}))\n", "X")
    order = ["f()", answer_code("X", ANSWER)]
    test = "\n".join(order if when == "before" else order[::-1])
    outcome = run(tmp_path, student, cell(test, "X_test"))
    assert outcome.answers == {"X": None}
    assert outcome.cell_errors["X"].startswith("ImitatedAnswer")
    assert MARKER not in printed(outcome, 1)


def test_an_answer_line_for_another_exercise_in_a_test_cell_is_ignored(tmp_path):
    outcome = run(tmp_path, cell(f"{answer_code('Y', {'cases': 'smuggled'})}\n"
                                 f"{answer_code('X', ANSWER)}", "X_test"))
    assert outcome.answers == {"X": ANSWER}
    assert "Y" not in outcome.answers
    assert MARKER not in printed(outcome, 0)


def test_a_test_cell_that_raises_before_printing_gives_no_answer_and_names_the_error(
        tmp_path):
    outcome = run(tmp_path,
                  cell(f"raise ValueError('model is not defined')\n{answer_code('X', ANSWER)}",
                       "X_test"),
                  cell(answer_code("Y", ANSWER), "Y_test"))
    assert outcome.answers == {"X": None, "Y": ANSWER}
    assert outcome.cell_errors == {"X": "ValueError: model is not defined", "Y": None}


# --- Time limits ----------------------------------------------------------------------------

def test_an_endless_loop_is_interrupted_and_the_cells_after_it_still_run(tmp_path):
    outcome = run(tmp_path, cell("while True:\n    pass"), cell("print('still running')"),
                  cell(answer_code("X", ANSWER), "X_test"), cell_timeout=2)
    assert TIMEOUT_ERROR in enames(outcome, 0)
    assert printed(outcome, 1) == "still running\n"
    assert outcome.answers == {"X": ANSWER}
    assert not (outcome.timed_out or outcome.kernel_died or outcome.error)


def test_a_cell_that_ignores_the_interrupt_is_stopped_by_the_notebooks_time_limit(tmp_path):
    started = time.monotonic()
    outcome = run(tmp_path, cell(answer_code("X", ANSWER), "X_test"),
                  cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                       "while True:\n    pass"),
                  *[cell("print('later')") for _ in range(10)],
                  cell(answer_code("Y", ANSWER), "Y_test"), cell_timeout=2, timeout=6)
    assert outcome.timed_out
    assert not outcome.kernel_died
    assert outcome.answers == {"X": ANSWER}
    assert time.monotonic() - started < 20


def test_a_cell_that_ends_the_kernel_keeps_the_answers_captured_before(tmp_path):
    outcome = run(tmp_path, cell(answer_code("X", ANSWER), "X_test"),
                  cell("import os\nos._exit(1)"), cell(answer_code("Y", ANSWER), "Y_test"))
    assert outcome.kernel_died
    assert not outcome.timed_out
    assert outcome.answers == {"X": ANSWER}
    assert "kernel" in outcome.error


# --- What the notebook leaves behind, what it does not run, how much it prints ---------------

def _alive(pid):
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "sleep" in process.name()
    return False


def test_no_process_the_notebook_started_outlives_it(tmp_path):
    outcome = run(tmp_path, cell(
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '1000'])\n"
        "own_session = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "print(child.pid, own_session.pid)"))
    pids = [int(pid) for pid in printed(outcome, 0).split()]
    try:
        assert len(pids) == 2
        assert [pid for pid in pids if _alive(pid)] == []
    finally:  # never leave them behind, even when the test fails
        for pid in filter(_alive, pids):
            psutil.Process(pid).kill()


def test_cells_marked_skipped_do_not_run(tmp_path):
    outcome = run(tmp_path,
                  cell("open('skipped.txt', 'w').close()\nprint('skipped ran')",
                       grader={"skip": True}),
                  cell(answer_code("X", ANSWER), "X_test", grader={"skip": True}),
                  cell("open('ran.txt', 'w').close()\nprint('ran')"))
    assert [c.outputs for c in outcome.notebook.cells[:2]] == [[], []]
    assert [c.execution_count for c in outcome.notebook.cells[:2]] == [None, None]
    assert outcome.answers == {}
    assert printed(outcome, 2) == "ran\n"
    assert (tmp_path / "ran.txt").exists()  # the kernel runs in workdir
    assert not (tmp_path / "skipped.txt").exists()


def test_a_flood_of_output_is_truncated(tmp_path):
    outcome = run(tmp_path, cell("for i in range(100_000):\n    print(i)"),
                  cell("print('next')"))
    text = printed(outcome, 0)
    assert text.startswith("0\n1\n")
    assert "... Output truncated ..." in text
    assert len(text.splitlines()) <= 1001
    assert printed(outcome, 1) == "next\n"
