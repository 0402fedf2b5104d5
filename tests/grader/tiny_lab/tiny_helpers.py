"""Helpers of the tiny lab, released beside its notebook: a sample matrix and the public test.

`test_column_means(column_means)` prints a green "All tests passed!" (what
`python -m grader validate` looks for) or, in red, what is wrong. It never raises: points
are decided elsewhere, by hidden tests.
"""

import numpy as np

__all__ = ["sample_matrix", "test_column_means"]

GREEN = "\033[92m"
RED = "\033[91m"
RESET = "\033[0m"


def sample_matrix():
    """A small matrix of 3 rows and 2 columns; the mean of its columns is [3.0, 4.0]."""
    return np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])


def column_means_problems(column_means):
    """What is wrong with `column_means` on the sample matrix (empty when it is right)."""
    X = sample_matrix()
    expected = np.array([3.0, 4.0])
    try:
        got = column_means(X.copy())
    except Exception as error:
        return [f"column_means raised {type(error).__name__}: {error}"]
    if got is None:
        return ["column_means returned None: compute `means` and end with `return means`."]
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return [f"column_means returned {type(got).__name__}, not an array of numbers"]
    if got.shape != expected.shape:
        return [f"expected an array of shape {expected.shape} (one mean per column of X),"
                f" got shape {got.shape}"]
    if not np.allclose(got, expected):
        return [f"expected {expected.tolist()}, got {got.tolist()}"]
    return []


def test_column_means(column_means):
    """Print the outcome in colour; return nothing (the call ends its cell)."""
    problems = column_means_problems(column_means)
    if not problems:
        print(f"{GREEN}All tests passed!{RESET}")
    for problem in problems:
        print(f"{RED}{problem}{RESET}")
