"""Helpers for a lab's judges: reading captured data that cannot be trusted, and writing
numbers and a student's own error text into one-line messages."""

from collections.abc import Iterable
from typing import Any

import numpy as np

from grader.records import ExerciseRun, Failure, FailureKind
from grader.student_check import quote  # one way to quote a student's text, shared


class Unreadable(Exception):
    """The captured data is not what the capture code can return: malformed or tampered."""


def number_array(value: object) -> np.ndarray | None:
    """`value` as a float array if it is a rectangular (nested) list of numbers, else None."""
    try:
        array = np.array(value)
    except Exception:  # ragged lists, absurd nesting: all just mean "not an array"
        return None
    # Strings, None, dicts, bools and ints too big for int64 give other kinds.
    if array.dtype.kind not in "iuf":
        return None
    return array.astype(float)


def fmt(values: Any) -> str:
    """Numbers for a message: one line, 4 significant digits, long arrays elided."""
    if np.ndim(values) == 0:  # array2string writes 1.0 as "1.", which ends sentences badly
        return f"{float(values):.4g}"
    text = np.array2string(np.asarray(values, dtype=float), precision=3, suppress_small=True,
                           threshold=12, edgeitems=3, separator=", ", max_line_width=10_000)
    return " ".join(text.split())  # 2-D arrays print a row per line; messages are one line


def listed(items: Iterable[object]) -> str:
    return ", ".join(str(item) for item in items)


def quote_error(failure: Failure, limit: int = 200) -> str:
    """A RAISED failure as 'Name: message', quoted."""
    name = quote(failure.error_name, limit=60)
    value = quote(failure.error_value, limit=limit)
    return f"{name}: {value}" if value else name


def optional_text(entry: dict[str, Any], key: str) -> str | None:
    """entry[key] if it is text, None if absent; Unreadable otherwise."""
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise Unreadable(f"{key} that is not text")
    return value


def captured_error(entry: dict[str, Any], key: str) -> str | None:
    """A {"error_name", "error_value"} record the capture made of an exception, as
    'Name: message', or None when entry has no such key."""
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unreadable(f"{key} that is not an error record")
    return quote(f"{optional_text(value, 'error_name') or ''}: "
                 f"{optional_text(value, 'error_value') or ''}")


def answer_cell_stopped(run: ExerciseRun) -> str:
    """' (its cell stopped with Name: message)' when the exercise's answer cell raised,
    for a sentence about a name the tests could not find; '' otherwise."""
    failure = run.answer_cell_error
    if failure is None or failure.kind is not FailureKind.RAISED:
        return ""
    return f" (its cell stopped with {quote_error(failure)})"
