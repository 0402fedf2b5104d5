"""What a worker process does with one submission: the Dask task, on this machine or another.

A task carries everything as plain data (the prepared notebook, its limits, what to
capture, the modules its lab preloads); the lab's release files travel beside it, once per
worker. The worker imports no lab: it runs the notebook in its sandbox and sends back a
RunOutcome, whatever happens, never an exception of ours. The graded notebook in it is
already rebuilt from the allow-list (grader.run.rebuild): no output a kernel made
leaves the worker as the kernel made it.
"""

import dataclasses
import logging
import time

from grader.records import RunEnd, RunOutcome
from grader.run.captures import CapturePlan
from grader.run.execution import short_error
from grader.run.rebuild import rebuilt_notebook
from grader.run.sandbox import run_notebook
from grader.run.support_files import support_dir
from grader.run.warm_kernels import KernelTemplate
from grader.settings import Limits

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GradingTask:
    student_id: str
    notebook: dict  # prepared: the source's given and test cells, the student's answers
    notebook_name: str
    plan: CapturePlan
    limits: Limits = Limits()
    preload: tuple = ()  # modules the kernel template imports once (the lab's)


_templates = {}  # preload -> KernelTemplate, one per worker process, started on first use


def grade_submission(task, support_files):
    """Run one submission beside `support_files`; a RunOutcome, never an exception."""
    started = time.monotonic()
    try:
        outcome = run_notebook(task.notebook, support_dir=support_dir(support_files,
                                                                      _worker_folder()),
                               notebook_name=task.notebook_name, limits=task.limits,
                               plan=task.plan, kernel_template=_template(task.preload))
        outcome = _with_rebuilt_notebook(outcome)
    except Exception as error:  # a fault of ours: this submission's error, not the batch's
        outcome = RunOutcome({}, RunEnd.GRADING_FAILED, short_error(error))
    return dataclasses.replace(outcome, seconds=time.monotonic() - started)


def _with_rebuilt_notebook(outcome):
    """`outcome` with its notebook rebuilt; without one if that fails (a fault of ours: the
    answers captured stand, the notebook is not shown as the kernel left it)."""
    if outcome.notebook is None:
        return outcome
    try:
        notebook = rebuilt_notebook(outcome.notebook)
    except Exception:
        log.exception("the graded notebook could not be rebuilt; it is left out")
        notebook = None
    return dataclasses.replace(outcome, notebook=notebook)


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
