"""A notebook cell's grading metadata, read in one place whatever JSON a file gives it.

A student's notebook is any JSON that nbformat accepts, and nbformat lets cell metadata
hold anything: `"nbgrader": null`, a string, a list. Every reader of a cell's nbgrader
metadata goes through here and gets a plain answer, never an AttributeError.
"""

import re

# Whole lines, indented or not, with one or more '#', as nbgrader's ClearHiddenTests reads them.
HIDDEN_TESTS = re.compile(r"^[ \t]*#+ *BEGIN HIDDEN TESTS.*?^[ \t]*#+ *END HIDDEN TESTS[^\n]*\n?",
                          re.MULTILINE | re.DOTALL)
GRADER_METADATA = "grader"  # our own cell metadata key: {"skip": true}


def metadata(cell):
    """The cell's metadata as a dict ({} for anything else)."""
    value = cell.get("metadata") if isinstance(cell, dict) else None
    return value if isinstance(value, dict) else {}


def nbgrader(cell):
    """The cell's nbgrader metadata as a dict ({} for null, a string, a list, ...)."""
    value = metadata(cell).get("nbgrader")
    return value if isinstance(value, dict) else {}


def grade_id(cell):
    """The cell's nbgrader grade_id if it is a string, else None."""
    value = nbgrader(cell).get("grade_id")
    return value if isinstance(value, str) else None


def is_answer_cell(cell):
    return nbgrader(cell).get("solution") is True


def is_test_cell(cell):
    return nbgrader(cell).get("grade") is True and not is_answer_cell(cell)


def points(cell):
    """The points nbgrader gives the cell (0 when absent or not a number)."""
    value = nbgrader(cell).get("points")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def tags(cell):
    value = metadata(cell).get("tags")
    return [tag for tag in value if isinstance(tag, str)] if isinstance(value, list) else []


def text(source):
    """A cell's source as one string, whether stored as a string or a list of lines."""
    if isinstance(source, list):
        return "".join(part for part in source if isinstance(part, str))
    return source if isinstance(source, str) else ""


def source(cell):
    return text(cell.get("source", "")) if isinstance(cell, dict) else ""


def public_text(cell_source):
    """A test cell's source as students see it: the hidden region removed."""
    return HIDDEN_TESTS.sub("", text(cell_source))


def hidden_text(cell_source):
    """The hidden regions of a test cell's source, markers included ("" if none)."""
    return "".join(match.group(0) for match in HIDDEN_TESTS.finditer(text(cell_source)))


def skipped(cell):
    """Whether the grader marked the cell to be skipped when grading."""
    value = metadata(cell).get(GRADER_METADATA)
    return isinstance(value, dict) and value.get("skip") is True
