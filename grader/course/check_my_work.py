"""The student's check in the release: check_my_work.py (grader.student_check, copied as it
is) and check_my_work.json, what it needs to know of the lab, all of it public:

    exercises       id, title and test cell of each exercise
    passed_marker   what the public tests print when they pass
    given_cells     the locked cells (test cells included) as released: public tests only
    skipped_cells   the cells the grader does not run (training, plots)
    cell_timeout    the seconds a cell may take when graded
"""

import json
import shutil
from pathlib import Path

import nbformat

from grader import cells, student_check
from grader.intake.prepare import SKIP_TAG
from grader.settings import Limits

CHECKER = "check_my_work.py"


def write_check_my_work(out, lab, released_notebook):
    """Write the checker and its spec into the release folder `out`."""
    out = Path(out)
    shutil.copyfile(student_check.__file__, out / CHECKER)
    spec = check_spec(lab, nbformat.read(str(released_notebook), as_version=4))
    (out / student_check.SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n",
                                                encoding="utf-8")


def check_spec(lab, released):
    """What check_my_work.py reads, from `released` (the student version, a NotebookNode)."""
    return {
        "exercises": [{"id": exercise.id, "title": exercise.title,
                       "test_cell": exercise.test_cell} for exercise in lab.exercises],
        "passed_marker": lab.public_tests_passed,
        "given_cells": {cells.grade_id(cell): cells.source(cell) for cell in released.cells
                        if cells.grade_id(cell) and not cells.is_answer_cell(cell)},
        "skipped_cells": sorted(cells.grade_id(cell) for cell in released.cells
                                if SKIP_TAG in cells.tags(cell) and cells.grade_id(cell)),
        "cell_timeout": Limits().cell_timeout,
    }
