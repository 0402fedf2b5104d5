"""The one base of the errors that are ours to explain.

A `GraderError` says, in its message, what went wrong and what to do: the command line
prints that message on one line and exits non-zero, without a traceback. Any other
exception reaching the command line is a fault of the grader's, shown with its traceback.
An exception that never leaves the grader (a kernel that stopped answering, a submission
that cannot be graded, which become a student's row) is not a GraderError:
tests/grader/test_errors.py lists those as internal, so that none is forgotten.
"""


class GraderError(Exception):
    """An error the grader explains to the person running it, in its message."""


def short_error(error: BaseException, limit: int = 300) -> str:
    """An exception of ours in a few words, for an instructor."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
