"""Intake: from the instructor's SUBMISSIONS path to one record per student folder."""

from grader.intake.folders import (
    Intake,
    IntakeError,
    Submission,
    check_submissions_path,
    collect_submissions,
)
from grader.intake.notebook_file import read_submitted_notebook

__all__ = ["Intake", "IntakeError", "Submission", "check_submissions_path", "collect_submissions",
           "read_submitted_notebook"]
