"""UNQ_C1, my_softmax: judged from what it returned on the hidden inputs.

Runs in the grader's own process with NumPy only. The captured data is never trusted: it
is read into the lab's rules' cases (lab_rules.SoftmaxCase), checked to be the hidden
inputs this grading's secret gives, and judged by the lab's rules (lab_rules.py), the same
rules the public tests and plain nbgrader's hidden tests apply. Whatever the data, the
result is full or no marks with messages that name the mistake, never an exception
(grader.judge turns an Unreadable into a message).
"""

import numpy as np

from grader.judge.failures import failure_message
from grader.judge.text import (
    Unreadable,
    answer_cell_stopped,
    captured_error,
    number_array,
    quote,
)
from grader.labs.c2_w2.hidden_inputs import softmax_inputs
from grader.labs.c2_w2.rules import lab_rules
from grader.plugin import Judgement
from grader.records import Message

SUBJECT = "my_softmax"


def judge_softmax(run, secret):
    messages = _messages(run, secret)
    return Judgement(0.0 if messages else 1.0, tuple(messages))


def _messages(run, secret):
    if run.answer is None:
        return [failure_message(SUBJECT, run.failure) or _capture_raised(run.failure)]
    if not isinstance(run.answer, dict):
        raise Unreadable("not a record")
    if run.answer.get("missing") == SUBJECT:
        return [Message("softmax.missing", "my_softmax is not defined when the tests run"
                        f"{answer_cell_stopped(run)}: run its cell without errors and keep the"
                        " name my_softmax.")]
    cases = _cases(run.answer, secret)
    if cases is None:
        return [Message("softmax.tampered", "The hidden test inputs were changed while grading:"
                        " my_softmax was not given the test's inputs. Submit a notebook whose"
                        " tests are untouched.")]
    return [Message(*problem) for problem in lab_rules.softmax_problems(cases)]


def _capture_raised(failure):
    error = quote(f"{failure.error_name}: {failure.error_value}") if failure else "no reason"
    return Message("softmax.capture_raised", f"The hidden test of my_softmax stopped with"
                   f" {error}: does the notebook replace a built-in name (print, sys.stdout)"
                   " or a NumPy function?")


def _cases(captured, secret):
    """The captured cases; None if their inputs are not the hidden inputs that `secret`
    gives (the kernel was sent those: anything else is tampering)."""
    entries = captured.get("cases")
    if not isinstance(entries, list):
        raise Unreadable("no list of cases")
    hidden = softmax_inputs(secret)
    if len(entries) != len(hidden):
        return None
    cases = []
    for entry, (label, expected_z) in zip(entries, hidden, strict=True):
        if not isinstance(entry, dict):
            raise Unreadable("a case is not a record")
        z = number_array(entry.get("z"))
        # JSON carries floats exactly, so anything but equality means other inputs.
        if z is None or z.shape != expected_z.shape or not np.array_equal(z, expected_z):
            return None
        cases.append(_case(label, expected_z, entry))
    return cases


def _case(label, z, entry):
    error = captured_error(entry, "error")
    if error is not None:
        return lab_rules.SoftmaxCase(z, error=error, label=label)
    returned = entry.get("returned")
    if returned is not None:
        if not isinstance(returned, str):
            raise Unreadable("a returned type that is not a name")
        return lab_rules.SoftmaxCase(z, returned=quote(returned, limit=60), label=label)
    answer = number_array(entry.get("a"))
    if answer is None:
        raise Unreadable("an answer that is not an array of numbers")
    return lab_rules.SoftmaxCase(z, answer, label=label)
