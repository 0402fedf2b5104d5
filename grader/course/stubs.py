"""An nbgrader preprocessor that clears solutions with a stub chosen per exercise.

nbgrader's ClearSolutions has one stub per language; the lab needs a different one per
graded cell (grader.plugin.Exercise.stub). It runs inside the nbgrader subprocess,
configured by the course's nbgrader_config.py.
"""

from nbgrader.preprocessors import ClearSolutions
from traitlets import Dict, Unicode

from grader import cells


class ExerciseStubs(ClearSolutions):
    """ClearSolutions whose code stub can be set per grade_id."""

    stubs = Dict(
        key_trait=Unicode(), value_trait=Unicode(),
        help="Code stub per nbgrader grade_id; other cells get ClearSolutions.code_stub.",
    ).tag(config=True)

    def _replace_solution_region(self, cell, language):
        grade_id = cells.grade_id(cell)
        if grade_id not in self.stubs:
            return super()._replace_solution_region(cell, language)
        default_stubs = self.code_stub
        self.code_stub = {**default_stubs, language: self.stubs[grade_id]}
        try:
            return super()._replace_solution_region(cell, language)
        finally:
            self.code_stub = default_stubs
