"""The judge of EX1, column_means: from what it returned on the hidden matrices.

Runs in the grader's own process. The captured data is never trusted: whatever its shape,
the result is a share of the points with messages naming the mistake, or Unreadable
(which the engine turns into a message), never another exception.

Partial credit: the share of the hidden matrices on which column_means is right (a mean
divided by the wrong dimension is right on the square ones only).
"""

import numpy as np

from grader.judge.failures import failure_message
from grader.judge.text import Unreadable, captured_error, fmt, number_array, quote
from grader.plugin import Judgement
from grader.records import Message

from .hidden_inputs import matrices as hidden_matrices
from .in_kernel import SUBJECT

# The mistakes the judge recognises, the most telling first (when several show, the
# commonest is explained, ties broken by this order).
_KINDS = ("axis", "divisor", "sum", "whole", "none", "raised", "not_numbers", "shape", "values")


def judge_column_means(run, secret):
    """Judgement of EX1: the share of hidden matrices right, and the commonest mistake."""
    if run.answer is None:
        return Judgement(0.0, (failure_message(SUBJECT, run.failure) or _capture_raised(run),))
    if not isinstance(run.answer, dict):
        raise Unreadable("not a record")
    if run.answer.get("missing") == SUBJECT:
        return Judgement(0.0, (Message("mean.missing", "column_means is not defined when the"
                                       " tests run: run its cell without errors and keep the"
                                       " name column_means."),))
    entries = run.answer.get("cases")
    if not isinstance(entries, list):
        raise Unreadable("no list of cases")
    matrices = hidden_matrices(secret)
    if len(entries) != len(matrices):
        return _tampered()
    mistakes = []  # (kind, text), one per wrong matrix
    for entry, matrix in zip(entries, matrices, strict=True):
        if not isinstance(entry, dict):
            raise Unreadable("a case is not a record")
        captured = number_array(entry.get("X"))
        # JSON carries floats exactly: anything but equality means other inputs.
        if captured is None or captured.shape != matrix.shape \
                or not np.array_equal(captured, matrix):
            return _tampered()
        mistake = _diagnose(matrix, entry)
        if mistake is not None:
            mistakes.append(mistake)
    score = 1.0 - len(mistakes) / len(matrices)
    return Judgement(score, _messages(mistakes, len(matrices)))


def _tampered():
    return Judgement(0.0, (Message("mean.tampered", "The hidden test's matrices were changed"
                                   " while grading: submit a notebook whose tests are"
                                   " untouched."),))


def _capture_raised(run):
    failure = run.failure
    error = quote(f"{failure.error_name}: {failure.error_value}") if failure else "no reason"
    return Message("mean.capture_raised", f"The hidden test of column_means stopped with"
                   f" {error}: does the notebook replace a built-in name or a NumPy function?")


def _diagnose(X, entry):
    """(kind, text) of what is wrong on one hidden matrix X; None when it is right."""
    where = f"On a hidden X of shape {X.shape}"
    error = captured_error(entry, "error")
    if error is not None:
        return "raised", f"{where}, column_means raised {error}."
    not_numbers = captured_error(entry, "not_numbers")
    if not_numbers is not None:
        return "not_numbers", (f"{where}, column_means returned something that is not an"
                               f" array of numbers ({not_numbers}).")
    got = number_array(entry.get("means"))
    if got is None:
        raise Unreadable("means that are not an array of numbers")
    expected = X.mean(axis=0)
    with np.errstate(all="ignore"):  # the student's numbers may be anything
        if got.shape == expected.shape and np.allclose(got, expected):
            return None
        if got.ndim == 0 and np.isnan(got):
            return "none", (f"{where}, column_means returned None: compute `means` and end"
                            " the function with `return means`.")
        shown = f" Expected {fmt(expected)}, got {fmt(got)}."
        for kind, wrong, text in (
                ("axis", X.mean(axis=1), "it returned the mean of each row (axis=1), not of"
                                         " each column (axis=0)."),
                ("divisor", X.sum(axis=0) / X.shape[1], "it divides by the number of columns,"
                 " X.shape[1], instead of the number of rows, X.shape[0] (right only when X"
                 " is square)."),
                ("sum", X.sum(axis=0), "it returned the sum of each column, not divided by"
                                       " the number of rows."),
                ("whole", np.asarray(X.mean()), "it returned the mean of all of X, one number,"
                                                " instead of one mean per column.")):
            if got.shape == wrong.shape and np.allclose(got, wrong):
                return kind, f"{where}, {text}{shown}"
        if got.shape != expected.shape:
            return "shape", (f"{where}, column_means returned shape {got.shape} instead of"
                             f" {expected.shape}: one mean per column of X.{shown}")
        return "values", f"{where}, column_means returned wrong values.{shown}"


def _messages(mistakes, total):
    """The commonest mistake (one example of it) with how many matrices were right, then
    the next commonest, if any."""
    if not mistakes:
        return ()
    kinds = [kind for kind, _ in mistakes]
    ranked = sorted(set(kinds), key=lambda kind: (-kinds.count(kind), _KINDS.index(kind)))
    texts = [next(text for k, text in mistakes if k == kind) for kind in ranked[:2]]
    texts[0] = (f"column_means is right on {total - len(mistakes)} of the {total} hidden"
                f" matrices. {texts[0]}")
    return tuple(Message(f"mean.{kind}", text)
                 for kind, text in zip(ranked[:2], texts, strict=True))
