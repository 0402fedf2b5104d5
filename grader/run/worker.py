"""What a worker process does with one submission: the Dask task, on this machine or another.

A task carries everything as plain data (the prepared notebook, its limits, what to
capture, the modules its lab preloads); the lab's release files travel beside it, once per
worker. The worker imports no lab: it runs the notebook in its sandbox and sends back a
RunOutcome, whatever happens, never an exception of ours.

SandboxRunner is the default Runner (grader.run.runner): a warm kernel forked from a
template kept per worker process, confined as the machine allows (grader.run.sandbox).
"""

import dataclasses
import time

from grader.records import RunEnd, RunOutcome
from grader.run.execution import short_error
from grader.run.runner import GradingTask, Runner  # noqa: F401 (GradingTask: its old home)
from grader.run.sandbox import run_notebook
from grader.run.support_files import support_dir
from grader.run.warm_kernels import KernelTemplate

_templates = {}  # preload -> KernelTemplate, one per worker process, started on first use


class SandboxRunner(Runner):
    """Each submission in a kernel forked from the worker's warm template, in its own
    sandbox (namespaces, cgroups, the system call policy, as the machine allows)."""

    name = "sandbox"

    def run(self, task, support_files):
        return grade_submission(task, support_files)


def grade_submission(task, support_files, *, warm=True):
    """Run one submission beside `support_files`; a RunOutcome, never an exception. With
    `warm`, its kernel is forked from the worker's template; without, nbclient starts one."""
    started = time.monotonic()
    try:
        template = _template(task.preload) if warm else None
        outcome = run_notebook(task.notebook, support_dir=support_dir(support_files,
                                                                      _worker_folder()),
                               notebook_name=task.notebook_name, limits=task.limits,
                               plan=task.plan, kernel_template=template)
    except Exception as error:  # a fault of ours: this submission's error, not the batch's
        outcome = RunOutcome({}, RunEnd.GRADING_FAILED, short_error(error))
    return dataclasses.replace(outcome, seconds=time.monotonic() - started)


def _template(preload):
    if preload not in _templates:
        _templates[preload] = KernelTemplate(preload)
    return _templates[preload]


def _worker_folder():
    """The Dask worker's own folder, which Dask clears after the worker is killed; None
    outside a worker."""
    try:
        from distributed import get_worker
        return get_worker().local_directory
    except (ImportError, ValueError):
        return None
