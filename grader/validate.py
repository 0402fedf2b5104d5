"""The student's check before submitting: run the notebook as the grader would and say,
per exercise, whether the public tests pass.

The grader prepares the notebook as for grading, so its test cells hold only their public
part: nothing here runs or reveals the hidden tests, and nothing is captured. Whether the
public tests pass is read from what they printed, by grader.student_check: the same code the
release ships as check_my_work.py, for a student who has only the released folder.

The notebook runs as a graded submission does: in a kernel forked from the lab's warm
template (grader.run.warm_kernels), in the sandbox the machine allows (grader.run.sandbox).
Importing TensorFlow is most of a check's time, so the template is started first thing and
imports it while this process imports the grader's own modules (a second: nbgrader) and
prepares the notebook; those imports are made in the functions below for that reason.
Only the cells up to the last exercise's test cell run: none after it can change a check.
With -v, one line says how long each stage took (bench/bench_validate.py reads it).
"""

import contextlib
import logging
import tempfile
import time
from datetime import datetime

from grader import cells
from grader.errors import GraderError
from grader.run.isolation import KernelSetupError
from grader.run.kept_templates import KEEP_SECONDS, template_for_checks
from grader.settings import Limits
from grader.stage_clock import seconds_since_started
from grader.student_check import ExerciseCheck, check_exercise, report

__all__ = ["ExerciseCheck", "NotANotebook", "report", "validate", "validate_file"]

log = logging.getLogger(__name__)
# The stages of one check, in order, as the -v line names them.
STAGES = ("start", "prepare", "template", "kernel", "cells", "end")
STAGES_LINE = "validate stages (wall seconds):"


class NotANotebook(GraderError):
    """The file cannot be checked; the message says why, in the intake's words."""


def validate_file(path, *, lab, limits=None, keep_seconds=KEEP_SECONDS):
    """Check the notebook file at `path` (a Path): (the checks, one per exercise, and the
    notes on what was restored). Raises NotANotebook when it cannot be read. The kernel's
    template is kept `keep_seconds` for the next check (grader.run.kept_templates)."""
    stages = Stages(time.time() - seconds_since_started())
    template = template_for_checks(lab.preload_modules, keep_seconds)
    template.start()  # first: its imports run while ours do and the notebook is prepared
    stages.lap("start")
    try:
        return _check_file(path, lab, limits, template, stages)
    finally:
        template.kill()  # its one kernel is gone already; a kept template stays
        stages.lap("end")
        log.info(stages.line())


def _check_file(path, lab, limits, template, stages):
    from grader.course.course import copy_release_files
    from grader.intake import read_submitted_notebook

    notebook, problem = read_submitted_notebook(path, lab)
    if problem:
        raise NotANotebook(problem)
    with tempfile.TemporaryDirectory(prefix="grader-validate-") as support:
        copy_release_files(lab, support)
        return validate(notebook, lab=lab, support_dir=support, template=template,
                        limits=limits, stages=stages)


def validate(notebook, *, lab, support_dir, template, limits=None, stages=None):
    """Run `notebook` (a dict) with the public tests only, in a kernel forked from
    `template` (a KernelTemplate of the lab's preload modules); (one check per exercise,
    the notes)."""
    from grader.intake.prepare import prepare

    # The executor (nbclient, nbgrader: a second) now, while the template imports, not
    # inside run_notebook once the template is ready.
    from grader.run import execution  # noqa: F401
    from grader.run.sandbox import protection, run_notebook

    limits = limits or Limits()
    stages = stages or Stages(time.time())
    prepared = prepare(notebook, lab.source)
    skip_cells_after_last_test(prepared.notebook, lab)
    protection(enabled=limits.confine)  # probed while the template imports; then cached
    stages.lap("prepare")
    with contextlib.suppress(KernelSetupError):  # then run_notebook fails, as grading would
        template.wait_until_ready()
    stages.lap("template")
    outcome = run_notebook(prepared.notebook, support_dir=support_dir, limits=limits,
                           notebook_name=lab.notebook_name, kernel_template=template)
    stages.lap_cells(outcome.notebook)
    # The last copy of a cell counts, as when the student runs the notebook.
    by_id = {cells.grade_id(cell): cell for cell in (outcome.notebook or {}).get("cells", [])}
    checks = [check_exercise(exercise.id, exercise.title, by_id.get(exercise.id),
                             by_id.get(exercise.test_cell), lab.public_tests_passed)
              for exercise in lab.exercises]
    return checks, prepared.notes


def skip_cells_after_last_test(notebook, lab):
    """Mark every cell after the last exercise's test cell (in the prepared `notebook`,
    which holds every test cell) to be skipped: no check reads what they do, and cells a
    student added at the end (training again, plots) would cost seconds."""
    test_cells = {exercise.test_cell for exercise in lab.exercises}
    tests = [index for index, cell in enumerate(notebook.cells)
             if cells.grade_id(cell) in test_cells]
    for cell in notebook.cells[max(tests) + 1:] if tests else []:
        cell.metadata[cells.GRADER_METADATA] = {"skip": True}


class Stages:
    """How long each stage of a check took, in wall seconds: each lap ends a stage."""

    def __init__(self, started):
        self.seconds = {}
        self.started = self._last = started

    def lap(self, stage, now=None):
        now = time.time() if now is None else now
        self.seconds[stage] = self.seconds.get(stage, 0.0) + max(0.0, now - self._last)
        self._last = max(self._last, now)

    def lap_cells(self, notebook):
        """End the kernel's start when the first cell began and the cells when the last
        one ended, as nbclient stamped them; a run whose cells never ran is all kernel."""
        span = cells_span(notebook)
        if span is None:
            self.lap("kernel")
            return
        self.lap("kernel", span[0])
        self.lap("cells", span[1])

    def line(self):
        """One line: each stage's seconds, the total, and this process's own CPU time."""
        stages = ", ".join(f"{stage} {self.seconds[stage]:.2f}" for stage in STAGES
                           if stage in self.seconds)
        return (f"{STAGES_LINE} {stages}; total {self._last - self.started:.2f}; this"
                f" process's CPU {time.process_time():.2f}")


def cells_span(notebook):
    """(when the first cell began, when the last one ended), in seconds since the epoch,
    from the stamps nbclient puts in each cell's metadata; None when no cell ran."""
    starts, ends = [], []
    for cell in (notebook or {}).get("cells", []):
        stamps = cells.metadata(cell).get("execution") or {}
        if stamps.get("iopub.execute_input") and stamps.get("shell.execute_reply"):
            starts.append(datetime.fromisoformat(stamps["iopub.execute_input"]).timestamp())
            ends.append(datetime.fromisoformat(stamps["shell.execute_reply"]).timestamp())
    return (min(starts), max(ends)) if starts else None
