"""What a worker process does with one submission: the Dask task, on this machine or another.

A task carries everything as plain data (the prepared notebook, its limits, what to
capture, the modules its lab preloads); the lab's release files travel beside it, once per
worker. The worker imports no lab: it runs the notebook in its sandbox and sends back a
RunOutcome, whatever happens, never an exception of ours. The graded notebook in it is
already rebuilt from the allow-list (grader.run.rebuild): no output a kernel made
leaves the worker as the kernel made it.

SandboxRunner is the default Runner (grader.run.runner): a warm kernel forked from a
template, confined as the machine allows (grader.run.sandbox). On the batch's local
cluster every worker forks from the batch's one template (kept_templates.BatchTemplate);
on a remote cluster each worker process starts its own.
The subprocess runner (grader.run.subprocess_runner) goes through grade_submission too.
"""

import dataclasses
import logging
import threading
import time

from grader.errors import short_error
from grader.records import RunEnd, RunOutcome
from grader.run.kept_templates import SharedTemplate, template_for_checks
from grader.run.runner import GradingTask, Runner  # noqa: F401 (GradingTask: its old home)
from grader.run.support_files import support_dir
from grader.stage_clock import StageClock, seconds_since_started

log = logging.getLogger(__name__)

# (preload, seconds kept, shared) -> KernelTemplate, one per worker process, started on
# first use
_templates = {}
_templates_lock = threading.Lock()


class SandboxRunner(Runner):
    """Each submission in a kernel forked from the worker's warm template, in its own
    sandbox (namespaces, cgroups, the system call policy, as the machine allows). With
    `keep_templates` seconds, the template is kept that long after the batch, for the next
    batch (one per worker slot on a remote cluster). `shared_template` (socket path, keep
    seconds), set by the batch for its local cluster, is the template every worker shares
    (kept_templates.BatchTemplate)."""

    name = "sandbox"

    def __init__(self, keep_templates=0.0, shared_template=None):
        self.keep_templates = keep_templates
        self.shared_template = shared_template

    def with_shared_template(self, shared):
        """This runner, its workers forking from the template `shared` ((path, keep
        seconds), None for none: each worker its own)."""
        return SandboxRunner(self.keep_templates, shared)

    def run(self, task, support_files):
        return grade_submission(task, support_files, keep_templates=self.keep_templates,
                                shared=self.shared_template)

    def warm_up(self, preload):
        # The template's imports (TensorFlow: seconds of CPU) start as the worker is set
        # up, before this process's own (nbclient, nbgrader: a second) and beside the
        # lab's loading and the first task's transfer; on a cluster that outlives a batch,
        # the next batch finds the template ready.
        _template(tuple(preload), self.keep_templates, self.shared_template).start()
        _sandbox()


def grade_submission(task, support_files, *, warm=True, keep_templates=0.0, shared=None):
    """Run one submission beside `support_files`; a RunOutcome, never an exception. With
    `warm`, its kernel is forked from the batch's `shared` template or the worker's (kept
    `keep_templates` seconds after the batch); without, nbclient starts one."""
    started = time.monotonic()
    clock = StageClock()
    try:
        template = _template(task.preload, keep_templates, shared) if warm else None
        with clock.stage("support files"):
            support = support_dir(support_files, _worker_folder())
        outcome = _sandbox().run_notebook(task.notebook, support_dir=support,
                               notebook_name=task.notebook_name, limits=task.limits,
                               plan=task.plan, kernel_template=template, clock=clock)
        with clock.stage("notebook rebuild"):
            outcome = _with_rebuilt_notebook(outcome)
    except Exception as error:  # a fault of ours: this submission's error, not the batch's
        outcome = RunOutcome({}, RunEnd.GRADING_FAILED, short_error(error))
    take_worker_start(clock)
    return dataclasses.replace(outcome, seconds=time.monotonic() - started,
                               stages=clock.totals())


def _with_rebuilt_notebook(outcome):
    """`outcome` with its notebook rebuilt; without one if that fails (a fault of ours: the
    answers captured stand, the notebook is not shown as the kernel left it)."""
    if outcome.notebook is None:
        return outcome
    from grader.run.rebuild import rebuilt_notebook  # nbconvert's: after the template (_sandbox)

    try:
        notebook = rebuilt_notebook(outcome.notebook)
    except Exception:
        log.exception("the graded notebook could not be rebuilt; it is left out")
        notebook = None
    return dataclasses.replace(outcome, notebook=notebook)


_worker_start = []  # (wall, CPU) seconds this worker process took to start, until told
_worker_start_noted = []  # [True] once noted: a cluster that outlives a batch is set up again
_worker_name = [""]  # this process's Dask worker's name, once set up


def note_worker_start(name=""):
    """Remember the worker's `name` and what starting this worker process cost (its CPU so
    far, and the wall time since it was created), once per process, for the first
    submission it grades to report. A worker set up again for a later batch has started
    already: its CPU since is not a start's."""
    _worker_name[0] = str(name)
    if _worker_start_noted:
        return
    _worker_start_noted.append(True)
    _worker_start[:] = [seconds_since_started(), time.process_time()]


def take_worker_start(clock):
    """Put the worker's start in `clock`, once per worker process."""
    if _worker_start:
        wall, cpu = _worker_start
        clock.add_stage("worker start", wall=wall, cpu=cpu)
        _worker_start.clear()


def _template(preload, keep_seconds=0.0, shared=None):
    """The worker's template for `preload`: the batch's `shared` one ((socket path, keep
    seconds)), its own, or one kept beside the worker's slot (its name in the cluster) for
    `keep_seconds` after it."""
    key = (preload, keep_seconds, shared)
    with _templates_lock:  # the worker's set-up (warm_up) and its task thread
        if key not in _templates:
            _templates[key] = (SharedTemplate(preload, *shared) if shared else
                               template_for_checks(preload, keep_seconds,
                                                   slot=_worker_name[0]))
        return _templates[key]


def _sandbox():
    # Imported once the template has started (warm_up), not with this module: unpickling
    # a SandboxRunner imports this module, and nbclient and nbgrader take a second.
    from grader.run import rebuild, sandbox  # noqa: F401 (rebuild: imported for the first run)

    return sandbox


def _worker_folder():
    """The Dask worker's own folder, which Dask clears after the worker is killed; None
    outside a worker."""
    try:
        from distributed import get_worker
        return get_worker().local_directory
    except (ImportError, ValueError):
        return None
