"""The tiny lab's capture: what runs in the student's kernel after the test cell of EX1.

The grader compiles this file and sends its bytecode to the kernel (grader.run.captures),
which calls `capture(exercise, namespace, seed)` and prints the JSON it returns. It imports
only the standard library and NumPy, and it decides nothing: it records what the student's
`column_means` returned on hidden matrices drawn from `seed`, and the judge (lab.py, in the
grader's own process, drawing the same matrices from the same seed) decides.
"""

import builtins

import numpy

DEFAULT_SEED = 20261201
# Four of the ten are square: a mean that divides by the wrong dimension is right on those
# only, which the judge turns into partial credit.
HIDDEN_SHAPES = ((3, 3), (4, 2), (2, 5), (1, 4), (6, 1), (5, 5), (7, 3), (4, 4), (2, 2), (3, 6))
SUBJECT = "column_means"


def hidden_matrices(seed):
    """The matrices the hidden test passes to column_means, drawn from `seed`."""
    rng = numpy.random.default_rng(seed)
    return [rng.uniform(-10.0, 10.0, shape) for shape in HIDDEN_SHAPES]


def capture(exercise, namespace, seed):
    """What the student's answer to `exercise` returns on the hidden matrices, as JSON."""
    if exercise != "EX1":
        raise builtins.ValueError(f"no capture for {exercise}")
    if SUBJECT not in namespace:
        return {"missing": SUBJECT}
    function = namespace[SUBJECT]
    return {"cases": [_case(function, matrix) for matrix in hidden_matrices(seed)]}


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
