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
from grader.judge.text import quote
from grader.run.sandbox import run_notebook

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Where IPython's traceback places the error in the cell: its first frame, the cell's own.
CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")


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
    # The last copy of a cell counts, as when the student runs the notebook.
    by_id = {cells.grade_id(cell): cell for cell in (outcome.notebook or {}).get("cells", [])}
    checks = [_check(exercise, by_id.get(exercise.id), by_id.get(exercise.test_cell),
                     lab.public_tests_passed)
              for exercise in lab.exercises]
    return checks, prepared.notes


def _check(exercise, answer_cell, test_cell, passed):
    stopped = answer_cell_stopped(exercise, answer_cell)
    if test_cell is None:
        return ExerciseCheck(exercise.id, exercise.title, False,
                             (*stopped, "The test cell did not run."))
    printed = ANSI_ESCAPE.sub("", "".join(o.get("text", "") for o in test_cell.get("outputs", [])
                                          if o.get("output_type") == "stream"))
    errors = [_error_text(output) for output in _errors(test_cell)]
    if passed in printed and not errors:  # what the cell defined before it stopped passes
        return ExerciseCheck(exercise.id, exercise.title, True, stopped)
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    return ExerciseCheck(exercise.id, exercise.title, False,
                         (*stopped, *errors, *lines[-6:]))


def answer_cell_stopped(exercise, cell):
    """(the sentence,) naming the error the exercise's answer cell stopped with and its
    line, or () when it ran through."""
    error = next(iter(_errors(cell or {})), None)
    if error is None:
        return ()
    return (f"The {exercise.id} cell stopped with {_error_text(error)}: the test after it"
            " sees only what the cell defined before that line; fix this error first.",)


def _errors(cell):
    return [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def _error_text(output):
    """'Name: message (line N)' of an error output; the line is the cell's."""
    text = quote(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    traceback = ANSI_ESCAPE.sub("", "\n".join(str(line) for line in output.get("traceback", [])))
    line = CELL_LINE.search(traceback)
    return f"{text} (line {line.group(1)})" if line else text


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
