"""The student's check before submitting: run the notebook as the grader would and say,
per exercise, whether the public tests pass.

The grader prepares the notebook as for grading, so its test cells hold only their public
part: nothing here runs or reveals the hidden tests, and nothing is captured. Whether the
public tests pass is read from what they printed, by grader.student_check: the same code the
release ships as check_my_work.py, for a student who has only the released folder.
"""

from grader import cells
from grader.intake.prepare import prepare
from grader.run.sandbox import run_notebook
from grader.student_check import ExerciseCheck, check_exercise, report

__all__ = ["ExerciseCheck", "report", "validate"]


def validate(notebook, *, lab, support_dir, limits=None):
    """Run `notebook` (a dict) with the public tests only; one check per exercise."""
    prepared = prepare(notebook, lab.source)
    outcome = run_notebook(prepared.notebook, support_dir=support_dir,
                           notebook_name=lab.notebook_name, limits=limits)
    # The last copy of a cell counts, as when the student runs the notebook.
    by_id = {cells.grade_id(cell): cell for cell in (outcome.notebook or {}).get("cells", [])}
    checks = [check_exercise(exercise.id, exercise.title, by_id.get(exercise.id),
                             by_id.get(exercise.test_cell), lab.public_tests_passed)
              for exercise in lab.exercises]
    return checks, prepared.notes
