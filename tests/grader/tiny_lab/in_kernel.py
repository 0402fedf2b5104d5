"""The tiny lab's capture: what runs in the student's kernel after the test cell of EX1.

The grader compiles this file and sends its bytecode to the kernel (grader.run.captures),
which calls `capture(exercise, namespace, inputs)` and prints the JSON it returns. It
imports only the standard library and NumPy, and it decides nothing: it records what the
student's `column_means` returned on the hidden matrices it is sent (hidden_inputs.py,
drawn in the grader's process from one grading's secret), and the judge (judge.py, drawing
the same matrices from the same secret) decides.
"""

import builtins

import numpy

SUBJECT = "column_means"


def capture(exercise, namespace, inputs):
    """What the student's answer to `exercise` returns on the hidden matrices `inputs`
    (lists of rows), as JSON."""
    if exercise != "EX1":
        raise builtins.ValueError(f"no capture for {exercise}")
    if SUBJECT not in namespace:
        return {"missing": SUBJECT}
    function = namespace[SUBJECT]
    return {"cases": [_case(function, numpy.array(rows, dtype=float)) for rows in inputs]}


def _case(function, matrix):
    case = {"X": matrix.tolist()}
    try:
        returned = function(matrix.copy())
    except builtins.Exception as error:
        case["error"] = _error(error)
        return case
    try:  # None becomes a lone NaN, which the judge reads as "returned None"
        case["means"] = numpy.asarray(returned, dtype=float).tolist()
    except builtins.Exception as error:
        case["not_numbers"] = _error(error)
    return case


def _error(error):
    return {"error_name": builtins.type(error).__name__, "error_value": builtins.str(error)}
