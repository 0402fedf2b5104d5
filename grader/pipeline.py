"""Grade a whole class: intake, then each submission in parallel, then the results.

    SUBMISSIONS -> intake -> prepare -> run in a sandbox (Dask workers: grader.run.cluster)
                -> verdicts (here, where no student code runs) -> results (here only)

Each step is a plain function of plain data. Whatever happens to one submission becomes
that student's status and detail; it never stops the batch.
"""

import os
import secrets
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat

from grader.intake.prepare import grade_id, prepare
from grader.intake.submissions import collect_submissions
from grader.labs.c2_w2 import lab
from grader.labs.c2_w2.verdicts import DEFAULT_HIDDEN_SEED, judge, verdict_message
from grader.publish import report
from grader.publish.results import gradebook_url, open_results_course, write_results
from grader.records import ERROR, GRADED, INVALID, TIMEOUT, SubmissionResult
from grader.run import cluster
from grader.run.execution import TIMEOUT_ERROR
from grader.run.sandbox import Limits, protection, run_notebook, without_cgroups
from grader.run.support_files import read_support_files, support_dir
from grader.run.warm_kernels import KernelTemplate


@dataclass(frozen=True)
class GradingTask:
    """One submission, ready to travel to a worker process, on this machine or another:
    plain data only (the release files travel beside it, once per worker)."""

    student_id: str
    notebook: dict
    limits: Limits
    hidden_seed: int = DEFAULT_HIDDEN_SEED  # the batch's hidden test inputs come from it


def main(*, submissions, out, workers=None, scheduler=None, timeout=600, cell_timeout=60,
         memory_mb=4096, disk_mb=512, sandbox=True, db=None, on_progress=None,
         hidden_seed=None):
    """Grade every student folder in `submissions` into `out`; return the results and a
    summary. `on_progress(done, total, result)` is called as each student finishes.
    Grading runs on the Dask cluster at `scheduler`, or on `workers` processes here.
    The hidden tests' inputs come from `hidden_seed`, by default a new secret per batch:
    a submission cannot carry answers worked out in advance. Kernels run in the sandbox
    (grader.run.sandbox) as far as each machine allows, unless `sandbox` is False."""
    started = time.monotonic()
    if hidden_seed is None:
        hidden_seed = secrets.randbelow(2**31)
    graded_at = datetime.now(UTC).isoformat(timespec="seconds")
    workers = workers or os.cpu_count() or 1
    protected = protection(enabled=sandbox)
    limits = Limits(cell_timeout=cell_timeout, timeout=timeout, memory_mb=memory_mb,
                    disk_mb=disk_mb, confine=sandbox)
    db = gradebook_url(out, db)  # a URL that is not one fails now, not after grading
    with (tempfile.TemporaryDirectory(prefix="grader-") as scratch,
          ThreadPoolExecutor(max_workers=1) as background):
        intake = collect_submissions(Path(submissions), Path(scratch) / "intake")
        # nbgrader's set-up of the gradebook takes seconds of a subprocess: meanwhile, grade.
        course = background.submit(open_results_course, Path(out), db_url=db)
        results = grade_all(intake.submissions, support_files=read_support_files(),
                            limits=limits, workers=workers, scheduler=scheduler,
                            on_progress=on_progress, hidden_seed=hidden_seed)
        summary = write_results(Path(out), results, db_url=db, course=course.result())
    warnings = [*intake.warnings, *protected.missing,  # said once per run
                *without_cgroups([result.sandbox for result in results], protected)]
    level = kernels_sandbox(results) or protected.level
    seconds = time.monotonic() - started
    warnings += write_run_report(out=out, facts=report.RunFacts(
        graded_at=graded_at, submissions=len(results), wall_seconds=round(seconds, 1),
        workers=workers, sandbox=level, timeout=timeout, cell_timeout=cell_timeout,
        memory_mb=memory_mb, hidden_seed=hidden_seed))
    return AutogradeRun(results, summary, warnings, seconds, level)


def write_run_report(*, out, facts):
    """run.json and report.html, after the grades. The grades are what counts: a report that
    fails becomes a warning saying how to build it again, not a failed batch."""
    try:
        report.write_run_facts(out=out, facts=facts)
        report.write_report(out=out)
    except Exception as error:  # a bug of the report's must not hide grades already written
        return [f"the report could not be written ({type(error).__name__}: {error}); "
                f"build it again with: python -m grader report {out}"]
    return []


def kernels_sandbox(results):
    """What confined the kernels, as the machines that ran them said (with --scheduler,
    other machines than this one): one level, or each level with its count."""
    levels = Counter(result.sandbox for result in results if result.sandbox)
    if len(levels) <= 1:
        return next(iter(levels), "")
    return ", ".join(f"{level} ({count} submission{'' if count == 1 else 's'})"
                     for level, count in sorted(levels.items()))


@dataclass
class AutogradeRun:
    results: list
    summary: object
    warnings: list
    seconds: float
    sandbox: str  # what confined the kernels (Protection.level, as their machines said)


def grade_all(submissions, *, support_files, limits, workers=1, scheduler=None,
              on_progress=None, hidden_seed=DEFAULT_HIDDEN_SEED):
    """Grade gradable submissions on the Dask cluster at `scheduler`, or on `workers`
    processes started here; one result per submission."""
    source = read_source()
    done = {}
    report = _progress_reporter(len(submissions), done, on_progress)
    for submission in submissions:
        if submission.status == INVALID:
            report(SubmissionResult(submission.student_id, INVALID, _sentence(submission.detail)))
    tasks = {}
    for submission in submissions:
        if submission.status != INVALID:
            prepared = prepare(submission.notebook, source)
            notes = [submission.detail, *prepared.notes]
            tasks[submission.student_id] = (
                GradingTask(submission.student_id, prepared.notebook, limits, hidden_seed),
                notes)
    if tasks:  # no cluster to start for a class of unreadable files
        _run_tasks(tasks, support_files=support_files, report=report,
                   scheduler=scheduler, workers=min(workers, len(tasks)))
    return sorted(done.values(), key=lambda result: result.student_id)


def _progress_reporter(total, done, on_progress):
    def report(result):
        done[result.student_id] = result
        if on_progress:
            on_progress(len(done), total, result)
    return report


def _run_tasks(tasks, *, support_files, report, scheduler, workers):
    """Grade {student: (task, notes)} on the cluster; report each result as it comes."""
    def on_outcome(task, outcome):
        report(finish(task.student_id, outcome, tasks[task.student_id][1]))

    with cluster.connect(scheduler=scheduler, workers=workers) as client:
        cluster.run_tasks(client, [task for task, _ in tasks.values()], grade=grade_submission,
                          support_files=support_files, on_outcome=on_outcome)


_kernel_template = None  # one per worker process, started on its first submission


def grade_submission(task, support_files):
    """Run one submission's notebook in its sandbox beside `support_files`; runs in a
    worker process and returns only plain data (the verdicts are made by the coordinating
    process)."""
    global _kernel_template
    if _kernel_template is None:
        _kernel_template = KernelTemplate()
    started = time.monotonic()
    outcome = run_notebook(task.notebook, support_dir=support_dir(support_files),
                           capture_cells=lab.HIDDEN_TEST_CELLS, limits=task.limits,
                           kernel_template=_kernel_template, hidden_seed=task.hidden_seed)
    return {**outcome.__dict__, "seconds": time.monotonic() - started,
            "hidden_seed": task.hidden_seed,
            "memory_mb": task.limits.memory_mb,
            "sandbox": protection(enabled=task.limits.confine).level}


def finish(student_id, outcome, notes):
    """Verdicts, status and detail for one student, from the outcome's plain data."""
    seed = outcome.get("hidden_seed", DEFAULT_HIDDEN_SEED)
    verdicts = {exercise: judge(exercise, outcome.get("answers", {}).get(exercise),
                                _cell_error(outcome, exercise), seed=seed)
                for exercise in lab.EXERCISES}
    notebook = outcome.get("notebook")
    if notebook is not None:
        show_verdicts(notebook, verdicts)
    status, why = _status(outcome)
    notes = [*notes, _cell_timeout_note(notebook)]
    detail = " ".join(_sentence(note) for note in [why, *notes] if note)
    return SubmissionResult(student_id, status, detail, verdicts, notebook,
                            outcome.get("seconds", 0.0), outcome.get("sandbox", ""))


def _cell_error(outcome, exercise):
    if exercise in outcome.get("answers", {}):
        return outcome.get("cell_errors", {}).get(exercise)
    if outcome.get("timed_out"):
        return "the notebook ran out of time before this exercise was tested"
    if outcome.get("kernel_died"):
        return "kernel died"
    return outcome.get("error") or "the test cell did not run"


def _cell_timeout_note(notebook):
    cells = (notebook or {}).get("cells", [])
    timed_out = sum(1 for cell in cells for output in cell.get("outputs", [])
                    if output.get("ename") == TIMEOUT_ERROR)
    if not timed_out:
        return ""
    return (f"{timed_out} cell(s) ran past the time limit for one cell and were stopped "
            "(an endless loop?); the cells after them still ran.")


def _sentence(note):
    note = note.strip()
    if not note:
        return note
    return note[0].upper() + note[1:] + ("" if note.endswith(".") else ".")


def _status(outcome):
    if outcome.get("timed_out"):
        return TIMEOUT, "Grading stopped: the notebook ran past its time limit."
    if outcome.get("kernel_died") and outcome.get("memory_exceeded"):
        return ERROR, (f"The notebook used more than its {outcome.get('memory_mb')} MB of "
                       "memory and was stopped; tests after that got no points.")
    if outcome.get("kernel_died"):
        return ERROR, ("The notebook's kernel stopped while grading (a cell may have used "
                       "too much memory or ended the process); tests after that got no points.")
    if outcome.get("error"):
        return ERROR, f"Grading failed: {outcome['error']}."
    return GRADED, ""


def show_verdicts(notebook, verdicts):
    """Put each verdict's message under its test cell, where the feedback shows it."""
    for cell in notebook["cells"]:
        exercise = lab.HIDDEN_TEST_CELLS.get(grade_id(cell))
        if exercise in verdicts:
            cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                "stream", name="stdout", text=verdict_message(verdicts[exercise]) + "\n"))


def read_source():
    return nbformat.read(str(lab.SOURCE_NOTEBOOK), as_version=4)
