"""Plain data that travels between the grader's steps: no notebooks, kernels or files.

A submission's result is data, whatever happened to it: a status column in the grades,
never an exception that stops the batch.
"""

from dataclasses import dataclass, field

GRADED = "graded"
TIMEOUT = "timeout"
ERROR = "error"
INVALID = "invalid"
STATUSES = (GRADED, TIMEOUT, ERROR, INVALID)


@dataclass(frozen=True)
class ExerciseVerdict:
    """Points for one exercise and, for every point lost, a message naming the mistake."""

    exercise: str  # the nbgrader grade_id of the answer cell, e.g. "UNQ_C1"
    points: float
    max_points: float
    messages: tuple[str, ...] = ()

    @property
    def full_marks(self):
        return self.points == self.max_points


@dataclass
class SubmissionResult:
    """Everything the results step needs about one student."""

    student_id: str
    status: str
    detail: str = ""
    verdicts: dict[str, ExerciseVerdict] = field(default_factory=dict)
    notebook: dict | None = None  # the graded notebook (nbformat JSON), when there is one
    seconds: float = 0.0
    sandbox: str = ""  # what confined the kernel, as the machine that ran it said

    @property
    def score(self):
        return sum(verdict.points for verdict in self.verdicts.values())
