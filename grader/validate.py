"""The student's check before submitting: run the notebook as the grader would and say,
per exercise, whether the public tests pass.

The hidden tests are removed from the source first, so nothing here runs or reveals
them; whether the public tests pass is read from what they printed.
"""

import copy
import re
from dataclasses import dataclass

from grader.intake.prepare import grade_id, prepare, public_text
from grader.labs.c2_w2 import lab
from grader.pipeline import read_source
from grader.run.sandbox import Limits, run_notebook

PASSED = "All tests passed!"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ExerciseCheck:
    exercise: str
    passed: bool
    messages: tuple[str, ...]


def validate(notebook, *, support_dir, limits=None):
    """Run `notebook` (a dict) with the public tests only; one check per exercise."""
    limits = limits or Limits()
    prepared = prepare(notebook, public_source())
    outcome = run_notebook(prepared.notebook, support_dir=support_dir, capture_cells={},
                           limits=limits)
    cells = {grade_id(cell): cell for cell in (outcome.notebook or {}).get("cells", [])}
    checks = [_check(exercise, cells.get(test_cell))
              for test_cell, exercise in lab.HIDDEN_TEST_CELLS.items()]
    return checks, prepared.notes


def public_source():
    """The source notebook with the hidden tests cut out of its test cells."""
    source = copy.deepcopy(read_source())
    for cell in source.cells:
        if grade_id(cell) in lab.HIDDEN_TEST_CELLS:
            cell.source = public_text(cell.source)
    return source


def _check(exercise, cell):
    if cell is None:
        return ExerciseCheck(exercise, False, ("The test cell did not run.",))
    printed = ANSI_ESCAPE.sub("", "".join(o.get("text", "") for o in cell.get("outputs", [])
                                          if o.get("output_type") == "stream"))
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    if PASSED in printed and not errors:
        return ExerciseCheck(exercise, True, ())
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    return ExerciseCheck(exercise, False, tuple(errors + lines[-6:]))


def report(checks, notes):
    """The text the command prints."""
    lines = []
    for check in checks:
        title = f"{check.exercise} ({lab.EXERCISE_TITLES[check.exercise]})"
        lines.append(f"{title}: {'public tests pass' if check.passed else 'public tests FAIL'}")
        lines.extend(f"    {message}" for message in check.messages)
    lines.extend(f"Note: {note}" for note in notes if note)
    lines.append("The hidden tests that decide the grade use other inputs: passing the public "
                 "tests is necessary, not sufficient.")
    return "\n".join(lines)
