"""The student's check before submitting: run the notebook as the grader would and say,
per exercise, whether the public tests pass.

The grader prepares the notebook as for grading, so its test cells hold only their public
part: nothing here runs or reveals the hidden tests, and nothing is captured. Whether the
public tests pass is read from what they printed.
"""

import re
from dataclasses import dataclass

from grader import cells
from grader.intake.prepare import prepare
from grader.run.sandbox import run_notebook

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ExerciseCheck:
    exercise: str
    title: str
    passed: bool
    messages: tuple[str, ...]


def validate(notebook, *, lab, support_dir, limits=None):
    """Run `notebook` (a dict) with the public tests only; one check per exercise."""
    prepared = prepare(notebook, lab.source)
    outcome = run_notebook(prepared.notebook, support_dir=support_dir,
                           notebook_name=lab.notebook_name, limits=limits)
    by_id = {cells.grade_id(cell): cell for cell in (outcome.notebook or {}).get("cells", [])}
    checks = [_check(exercise, by_id.get(exercise.test_cell), lab.public_tests_passed)
              for exercise in lab.exercises]
    return checks, prepared.notes


def _check(exercise, cell, passed):
    if cell is None:
        return ExerciseCheck(exercise.id, exercise.title, False, ("The test cell did not run.",))
    printed = ANSI_ESCAPE.sub("", "".join(o.get("text", "") for o in cell.get("outputs", [])
                                          if o.get("output_type") == "stream"))
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    if passed in printed and not errors:
        return ExerciseCheck(exercise.id, exercise.title, True, ())
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    return ExerciseCheck(exercise.id, exercise.title, False, tuple(errors + lines[-6:]))


def report(checks, notes):
    """The text the command prints."""
    lines = []
    for check in checks:
        verdict = "public tests pass" if check.passed else "public tests FAIL"
        lines.append(f"{check.exercise} ({check.title}): {verdict}")
        lines.extend(f"    {message}" for message in check.messages)
    lines.extend(f"Note: {note}" for note in notes if note)
    lines.append("The hidden tests that decide the grade use other inputs: passing the public "
                 "tests is necessary, not sufficient.")
    return "\n".join(lines)
